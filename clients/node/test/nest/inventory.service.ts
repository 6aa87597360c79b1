// InventoryService as written for @nestjs-redisx/locks (its @WithLock docs:
// "Inventory Management", and the key forms of "Key Patterns"): only the
// import of WithLock, from 'lockproxy' instead of '@nestjs-redisx/locks',
// differs.
import { ConflictException, Injectable } from '@nestjs/common';
import { WithLock } from 'lockproxy';

import { InventoryRepository } from './stores';

@Injectable()
export class InventoryService {
  constructor(private readonly inventory: InventoryRepository) {}

  // Buyers of one SKU queue for its lock: a read-check-write at a time.
  @WithLock({ key: 'inventory:{0}', ttl: 5000, waitTimeout: 10000 })
  async reserveStock(sku: string, quantity: number): Promise<boolean> {
    const stock = await this.inventory.getStock(sku);

    if (stock < quantity) {
      return false;
    }

    await this.inventory.decrement(sku, quantity);
    return true;
  }

  // One sync at a time across every instance; the others skip it.
  @WithLock({ key: 'sync:inventory', onLockFailed: 'skip' })
  async syncInventory(durationMs: number): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    this.inventory.syncs.push(Date.now());
    return 'synced';
  }

  // Object property key.
  @WithLock({
    key: 'inventory:{0.sku}',
    waitTimeout: 0,
    onLockFailed: (key) => new ConflictException(`${key} is being updated`),
  })
  async adjust(dto: { sku: string; delta: number }): Promise<number> {
    const stock = await this.inventory.getStock(dto.sku);
    this.inventory.set(dto.sku, stock + dto.delta);
    return stock + dto.delta;
  }

  // Dynamic key function.
  @WithLock({
    key: (sku: string, warehouse: string) => `inventory:${warehouse}:${sku}`,
    ttl: 5000,
    waitTimeout: 0,
  })
  async count(sku: string, warehouse: string, hold: Promise<void>): Promise<number> {
    await hold;
    return this.inventory.getStock(sku);
  }
}
