//! The fleet's lease protocol in one process, one test binary: replicas
//! sharing a `MemoryStore` under paused time. The same protocol with real
//! processes on a real Redis is tests/fleet_redis.rs (`harness = false`: it
//! re-executes itself as the workers, so it stays a binary of its own).

mod fleet_memory;
