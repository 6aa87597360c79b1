// OrderService: the "Before" of docs/migration.md ("From @nestjs-redisx/locks",
// "Before and after"), unchanged but for the import from 'lockproxy' and the
// charge() it leaves out.
import { Inject, Injectable } from '@nestjs/common';
import { LOCK_SERVICE, ILockService, WithLock } from 'lockproxy';

@Injectable()
export class OrderService {
  constructor(@Inject(LOCK_SERVICE) private readonly locks: ILockService) {}

  @WithLock({ key: 'order:{0}', ttl: 30000, waitTimeout: 5000 })
  async pay(orderId: string) {
    await this.charge(orderId);
  }

  async payByHand(orderId: string) {
    return this.locks.withLock(`order:${orderId}`, () => this.charge(orderId), { ttl: 30000 });
  }

  // What the docs' example leaves out: charges one order, and counts how many
  // charges of it ran at once.
  readonly charged: string[] = [];
  inFlight = 0;
  maxInFlight = 0;

  private async charge(orderId: string) {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    this.charged.push(orderId);
    this.inFlight--;
  }
}
