//! Many users in one process, one test binary: `Users` against the code-flow
//! emulator with a `MemoryStore`. The durable store with real processes on a
//! real PostgreSQL is tests/users_postgres.rs (`harness = false`: it
//! re-executes itself as the workers, so it stays a binary of its own).

#[path = "../common/mod.rs"]
mod common;

mod users_memory;
