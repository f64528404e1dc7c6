//! Room for each subsystem's cache on a kernel, without the kernel naming
//! them: a subsystem defines its own cache type beside its code and asks
//! the kernel's [`Caches`] for it by type, so `kernel.rs` imports none of
//! the files that read processes, locks, handles or stacks.

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

/// One cache per type, created empty on first use and kept for the
/// kernel's life.
#[derive(Default)]
pub(crate) struct Caches {
    head: OnceLock<Box<Slot>>,
}

/// A cache and the next slot: a list that only grows, one slot per cache
/// type (a handful, fixed by the code, not by the dump).
struct Slot {
    value: Box<dyn Any + Send + Sync>,
    next: OnceLock<Box<Slot>>,
}

impl Caches {
    /// The cache of type `T`, created with `T::default()` the first time.
    pub(crate) fn get<T: Any + Default + Send + Sync>(&self) -> &T {
        let mut at = &self.head;
        loop {
            let slot = at.get_or_init(|| {
                Box::new(Slot {
                    value: Box::new(T::default()),
                    next: OnceLock::new(),
                })
            });
            if let Some(v) = slot.value.downcast_ref::<T>() {
                return v;
            }
            at = &slot.next;
        }
    }
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut n = 0;
        let mut at = &self.head;
        while let Some(slot) = at.get() {
            n += 1;
            at = &slot.next;
        }
        write!(f, "Caches({n})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct A(OnceLock<u32>);
    #[derive(Default)]
    struct B(OnceLock<&'static str>);

    #[test]
    fn each_type_gets_its_own_cache_once() {
        let c = Caches::default();
        assert_eq!(*c.get::<A>().0.get_or_init(|| 7), 7);
        assert_eq!(*c.get::<B>().0.get_or_init(|| "b"), "b");
        assert_eq!(*c.get::<A>().0.get_or_init(|| 9), 7);
        assert_eq!(c.get::<B>().0.get(), Some(&"b"));
        assert_eq!(format!("{c:?}"), "Caches(2)");
    }
}
