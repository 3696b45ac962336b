//! The model's exploration, and the checks it runs: every interleaving under
//! each fault, and each rule switched off (a mutation) caught.

use super::*;

/// Explores every state reachable from `start`, checking the invariants;
/// returns how many there were. A broken invariant panics with the path to it.
fn explore(start: World) -> usize {
    let mut parent: std::collections::HashMap<World, Option<World>> = Default::default();
    let mut stack = vec![(start, None::<World>)];
    while let Some((w, from)) = stack.pop() {
        if parent.contains_key(&w) {
            continue;
        }
        parent.insert(w.clone(), from);
        let checked = std::panic::catch_unwind(|| {
            w.check();
            let next = w.successors();
            if w.quiet() {
                w.check_end();
            } else if next.is_empty() {
                panic!("stuck");
            }
            next
        });
        match checked {
            Ok(next) => stack.extend(next.into_iter().map(|n| (n, Some(w.clone())))),
            Err(e) => {
                let mut path = vec![w.clone()];
                while let Some(Some(p)) = parent.get(path.last().unwrap()) {
                    path.push(p.clone());
                }
                for (n, s) in path.iter().rev().enumerate() {
                    eprintln!(
                        "{n}: {:?} store={:?} lease={:?} valid={:?}",
                        s.procs, s.store, s.lease, s.valid
                    );
                }
                std::panic::resume_unwind(e);
            }
        }
    }
    parent.len()
}

/// The invariant exploring `start` breaks, if any.
fn breaks(start: World) -> Option<String> {
    let result = std::panic::catch_unwind(move || explore(start));
    let panic = result.err()?;
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

fn rotating(rules: Rules) -> World {
    World::start(3, Provider::Rotating, rules)
}

#[test]
fn every_interleaving_without_faults() {
    assert!(explore(rotating(ALL_RULES)) > 50);
    assert!(explore(rotating(ALL_RULES).after_a_401()) > 50);
}

#[test]
fn every_interleaving_with_a_login_during_refreshes() {
    let states = explore(rotating(ALL_RULES).after_a_401().with_logins(1))
        + explore(rotating(ALL_RULES).with_logins(1).faults(1, 1, 0, 0));
    assert!(states > 500, "{states}");
}

#[test]
fn every_interleaving_with_a_rejected_refresh_token() {
    let rejects = World::start(3, Provider::Rejects { dead: 1 }, ALL_RULES).after_a_401();
    let states = explore(rejects.clone()) + explore(rejects.with_logins(1));
    assert!(states > 100, "{states}");
}

/// Altrata: a holder stalls past its lease, the next holder's token revokes
/// its own, and its write arrives late: fenced out, it adopts the valid one.
#[test]
fn every_interleaving_with_a_stalled_holder_at_a_revoking_provider() {
    let revoking = World::start(3, Provider::Revoking, ALL_RULES);
    let states = explore(revoking.clone().after_a_401().faults(1, 0, 0, 0))
        + explore(revoking.faults(2, 1, 1, 0));
    assert!(states > 500, "{states}");
}

#[test]
fn every_interleaving_with_a_stalled_holder_and_a_crash() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 0, 0))
        + explore(rotating(ALL_RULES).after_a_401().faults(1, 1, 0, 0))
        + explore(rotating(ALL_RULES).faults(1, 1, 0, 0));
    assert!(states > 1_000, "{states}");
}

/// The write after a rotation fails (each try): the token is kept, its holder
/// keeps the lease, and it is written when the store answers; nobody sends the
/// old refresh token.
#[test]
fn every_interleaving_with_failed_writes() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(0, 0, 2, 0))
        + explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 2, 0))
        + explore(
            rotating(ALL_RULES)
                .after_a_401()
                .faults(0, 0, 1, 0)
                .with_logins(1),
        );
    assert!(states > 500, "{states}");
}

/// The store is wiped at any step: one token per need still, and after a
/// restart between needs, exactly one for the whole fleet.
#[test]
fn every_interleaving_with_the_store_wiped() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(0, 0, 0, 1))
        + explore(rotating(ALL_RULES).after_an_empty_restart())
        + explore(
            rotating(ALL_RULES)
                .after_an_empty_restart()
                .faults(0, 0, 1, 1),
        );
    assert!(states > 500, "{states}");
}

/// A wrong password: one attempt for the whole fleet per cool-down.
#[test]
fn every_interleaving_with_a_wrong_password() {
    let wrong = World::start(3, Provider::WrongPassword, ALL_RULES);
    let states = explore(wrong.clone()) + explore(wrong.with_cooldown_ends(2).faults(0, 0, 0, 1));
    assert!(states > 50, "{states}");
}

/// The store loses its last write after everyone adopted it: the spent
/// refresh token it offers again is never sent; the fleet moves on from the
/// one it holds.
#[test]
fn every_interleaving_with_a_rolled_back_store() {
    let states = explore(rotating(ALL_RULES).after_a_401().with_rollbacks(1))
        + explore(
            rotating(ALL_RULES)
                .after_a_401()
                .with_rollbacks(2)
                .faults(0, 0, 1, 0),
        );
    assert!(states > 200, "{states}");
}

/// An unwritten token outlives a mark made from the refresh token it rotated.
#[test]
fn every_interleaving_with_a_mark_over_an_unwritten_token() {
    let states = explore(rotating(ALL_RULES).after_a_401().faults(1, 0, 2, 0));
    assert!(states > 100, "{states}");
}

// Mutations: each rule switched off, the check must fail.

#[test]
fn mutation_without_fencing_is_caught() {
    let rules = Rules {
        fence: false,
        ..ALL_RULES
    };
    let revoking = World::start(3, Provider::Revoking, rules);
    let broken = breaks(revoking.after_a_401().faults(1, 0, 0, 0)).unwrap();
    assert!(broken.contains("a token was wasted"), "{broken}");
}

#[test]
fn mutation_without_epochs_is_caught() {
    let rules = Rules {
        epochs: false,
        ..ALL_RULES
    };
    // An empty restart then looks like a rollback, or like nothing newer.
    let broken = breaks(rotating(rules).after_an_empty_restart()).unwrap();
    assert!(
        broken.contains("a token was wasted") || broken.contains("refresh token reused"),
        "{broken}"
    );
}

#[test]
fn mutation_dropping_unwritten_tokens_is_caught() {
    let rules = Rules {
        keep_unwritten: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().faults(0, 0, 2, 0)).unwrap();
    assert!(broken.contains("refresh token reused"), "{broken}");
}

#[test]
fn mutation_without_the_fleet_cooldown_is_caught() {
    let rules = Rules {
        fleet_cooldown: false,
        ..ALL_RULES
    };
    let broken = breaks(World::start(3, Provider::WrongPassword, rules)).unwrap();
    assert!(
        broken.contains("attempts with a wrong password"),
        "{broken}"
    );
}

#[test]
fn mutation_letting_a_mark_win_over_a_newer_token_is_caught() {
    let rules = Rules {
        newer_than_mark: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().faults(1, 0, 2, 0)).unwrap();
    assert!(broken.contains("not hold the valid token"), "{broken}");
}

#[test]
fn mutation_refreshing_from_a_rolled_back_entry_is_caught() {
    let rules = Rules {
        rollbacks_seen: false,
        ..ALL_RULES
    };
    let broken = breaks(rotating(rules).after_a_401().with_rollbacks(1)).unwrap();
    assert!(broken.contains("refresh token reused"), "{broken}");
}
