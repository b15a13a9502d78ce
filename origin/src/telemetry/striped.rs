//! A value kept once per stripe, each on its own cache line, so threads counting at once do
//! not pass one line between cores on every request: a thread uses the stripe it was given on
//! first use, and readers visit them all.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Stripes per value: more than the worker threads of the runtimes that count.
const STRIPES: usize = 8;

/// Hands each thread its stripe, in turn.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

/// `T` on a cache line (two, for adjacent-line prefetch) of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// One `T` per stripe.
#[derive(Debug, Default)]
pub struct Striped<T> {
    stripes: [Line<T>; STRIPES],
}

impl<T> Striped<T> {
    /// This thread's stripe.
    pub fn mine(&self) -> &T {
        &self.stripes[MINE.with(|at| *at)].0
    }

    /// Every stripe.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|line| &line.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_and_stripes_do_not_share_a_line() {
        let counter = Striped::<AtomicU64>::default();
        std::thread::scope(|scope| {
            for _ in 0..12 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        counter.mine().fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let total: u64 = counter.all().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 12_000);
        assert!(std::mem::align_of::<Line<AtomicU64>>() >= 128);
    }
}
