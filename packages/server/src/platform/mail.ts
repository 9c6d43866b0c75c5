import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { newId } from './ids.js';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
}

/**
 * The embedded mailer: each message is written as a JSON file into the outbox folder and logged
 * (without its body, which may hold a one-time token), so an operator can hand it on by hand.
 */
export function outboxMailer(dir: string, log: Logger): Mailer {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return {
    async send(message) {
      const id = newId();
      const file = join(dir, `${id}.json`);
      writeFileSync(file, JSON.stringify({ id, created_at: new Date().toISOString(), ...message }, null, 2), {
        mode: 0o600,
      });
      log.info({ type: 'mail.outbox', to: message.to, subject: message.subject, file }, 'mail written to outbox');
    },
  };
}
