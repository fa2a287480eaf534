// Test utilities: fixtures that stand in for external servers the build
// machines cannot run. Nothing here is part of a service.
export { KafkaFixtureBroker } from "./kafka/fixture-broker.js";
export type { FixtureBrokerOptions } from "./kafka/fixture-broker.js";
export { KafkaReader, KafkaWriter } from "./kafka/wire.js";
export { startEtcd } from "./etcd/etcd-server.js";
export type { EtcdServer } from "./etcd/etcd-server.js";
export { closedPort } from "./ports.js";
