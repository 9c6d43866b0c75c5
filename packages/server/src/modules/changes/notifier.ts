import { EventEmitter } from 'node:events';

/**
 * Wakes this process's change streams when a tenant's write commits. Streams also poll, so a write
 * committed by another node reaches them within the poll interval; the notifier only makes the
 * common single-node case immediate.
 */
export class ChangeNotifier {
  readonly #events = new EventEmitter();
  constructor() {
    this.#events.setMaxListeners(0);
  }

  notify(tenantId: string): void {
    this.#events.emit(tenantId);
  }

  subscribe(tenantId: string, listener: () => void): () => void {
    this.#events.on(tenantId, listener);
    return () => this.#events.off(tenantId, listener);
  }
}
