// The test application: the three services with LockproxyModule, configured
// with forRoot() (AppModule) or forRootAsync() (AsyncAppModule).
import { Injectable, Module } from '@nestjs/common';
import { LockproxyModule } from 'lockproxy';

import { InventoryService } from './inventory.service';
import { OrderService } from './order.service';
import { PaymentService } from './payment.service';
import { InventoryRepository, OrdersRepository, PaymentGateway } from './stores';

const services = [PaymentService, InventoryService, OrderService, OrdersRepository, PaymentGateway, InventoryRepository];

@Module({
  imports: [
    LockproxyModule.forRoot({
      url: process.env.LOCKPROXY_URL,
      keyPrefix: process.env.LOCKPROXY_TEST_PREFIX,
    }),
  ],
  providers: services,
})
export class AppModule {}

@Injectable()
export class LockConfig {
  readonly url = process.env.LOCKPROXY_URL;
  readonly keyPrefix = process.env.LOCKPROXY_TEST_PREFIX;
}

@Module({ providers: [LockConfig], exports: [LockConfig] })
export class ConfigModule {}

@Module({
  imports: [
    LockproxyModule.forRootAsync({
      imports: [ConfigModule],
      inject: [LockConfig],
      useFactory: async (config: LockConfig) => ({ url: config.url, keyPrefix: config.keyPrefix, defaultTtl: 20000 }),
    }),
  ],
  providers: services,
})
export class AsyncAppModule {}
