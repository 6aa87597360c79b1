// PaymentService as written for @nestjs-redisx/locks (its @WithLock docs:
// "Payment Processing"): only the import of WithLock and LOCK_SERVICE, from
// 'lockproxy' instead of '@nestjs-redisx/locks', differs.
import { BadRequestException, ConflictException, Inject, Injectable } from '@nestjs/common';
import { ILockService, LOCK_SERVICE, WithLock } from 'lockproxy';

import { OrdersRepository, Payment, PaymentGateway } from './stores';

@Injectable()
export class PaymentService {
  constructor(
    private readonly orders: OrdersRepository,
    private readonly gateway: PaymentGateway,
    @Inject(LOCK_SERVICE) private readonly lockService: ILockService,
  ) {}

  // One payment per order at a time: the others wait, then find it paid.
  @WithLock({ key: 'payment:{0}', ttl: 10000, waitTimeout: 10000 })
  async processPayment(orderId: string): Promise<Payment> {
    const order = await this.orders.findOne(orderId);

    if (order.paid) {
      throw new BadRequestException('Already paid');
    }

    const result = await this.gateway.charge(order);
    await this.orders.markPaid(orderId);

    return result;
  }

  // A refund does not wait: a second one while the first runs is refused.
  @WithLock({
    key: 'payment:{0.orderId}',
    waitTimeout: 0,
    onLockFailed: (key) => new ConflictException(`Order ${key} already being processed`),
  })
  async refund(dto: { orderId: string; reason: string }): Promise<void> {
    await this.gateway.refund(dto.orderId);
  }

  // The service API, for code that takes the lock by hand.
  async isBeingProcessed(orderId: string): Promise<boolean> {
    return this.lockService.isLocked(`payment:${orderId}`);
  }
}
