// In-memory stand-ins for the tables and the payment gateway the services
// use. Each read and write awaits, as a database call would, so that two
// calls that are not kept apart by a lock interleave and get it wrong.
import { Injectable } from '@nestjs/common';

const tick = (ms = 2) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface Order {
  id: string;
  amount: number;
  paid: boolean;
}

export interface Payment {
  orderId: string;
  amount: number;
  chargeId: string;
}

@Injectable()
export class OrdersRepository {
  private readonly rows = new Map<string, Order>();

  add(order: Order): void {
    this.rows.set(order.id, { ...order });
  }

  async findOne(id: string): Promise<Order> {
    await tick();
    const row = this.rows.get(id);
    if (!row) throw new Error(`no order ${id}`);
    return { ...row };
  }

  async markPaid(id: string): Promise<void> {
    await tick();
    const row = this.rows.get(id);
    if (row) row.paid = true;
  }
}

@Injectable()
export class PaymentGateway {
  readonly charges: Payment[] = [];
  readonly refunds: string[] = [];

  async charge(order: Order): Promise<Payment> {
    await tick(5);
    const payment = { orderId: order.id, amount: order.amount, chargeId: `ch_${this.charges.length + 1}` };
    this.charges.push(payment);
    return payment;
  }

  async refund(orderId: string): Promise<void> {
    await tick(5);
    this.refunds.push(orderId);
  }
}

@Injectable()
export class InventoryRepository {
  private readonly stock = new Map<string, number>();
  readonly syncs: number[] = [];

  set(sku: string, units: number): void {
    this.stock.set(sku, units);
  }

  async getStock(sku: string): Promise<number> {
    await tick();
    return this.stock.get(sku) ?? 0;
  }

  // decrement reads, then writes: two calls at once both subtract from the
  // same old value.
  async decrement(sku: string, quantity: number): Promise<void> {
    const units = this.stock.get(sku) ?? 0;
    await tick();
    this.stock.set(sku, units - quantity);
  }

  peek(sku: string): number {
    return this.stock.get(sku) ?? 0;
  }
}
