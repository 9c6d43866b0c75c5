import pino, { type Logger } from 'pino';

/** Structured JSON logs; credentials never reach them. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'strata' },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.token', '*.secret', '*.password'],
      censor: '[redacted]',
    },
  });
}
