//! `sim`: the simulation CLI. Build and run it with `cargo sim ...` (the
//! optimised `--cfg madsim` build); see `cargo sim --help`.

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!("the sim CLI runs inside the deterministic simulator: use `cargo sim <command>` (see README.md)");
    std::process::ExitCode::from(2)
}

// A simulated run allocates for every message, task and timer; mimalloc
// makes the simulator about 15 % faster than glibc's malloc
// (`cargo sim bench`), and its version 2 (`sim/Cargo.toml`) touches less
// fresh memory than its version 3. Allocation addresses never reach
// behaviour.
#[cfg(madsim)]
#[global_allocator]
static ALLOC: alloc::Mi = alloc::Mi;

/// mimalloc, asked for most blocks without an alignment. Rust gives every
/// allocation one, and `mimalloc::MiMalloc` passes it on to
/// `mi_malloc_aligned`, which goes through three more calls and checks
/// before the block `mi_malloc` would take (checkout seed 4, 2PC, `sim`
/// profile: 2,051.4 M instructions with `MiMalloc`, 2,010.6 M with this).
/// `mi_malloc`'s blocks are aligned to 16 bytes, or to their size below
/// that (mimalloc's `MI_MAX_ALIGN_SIZE`, its size classes being whole
/// numbers of 16 bytes from 16 up): for an alignment of at most 16 and at
/// most the size, the rule Rust's own `System` allocator follows with
/// `malloc`, it is the block `mi_malloc_aligned` would have returned.
/// Larger alignments still go to `MiMalloc`. The same runs (trace hashes).
#[cfg(madsim)]
mod alloc {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    extern "C" {
        fn mi_malloc(size: usize) -> *mut c_void;
        fn mi_zalloc(size: usize) -> *mut c_void;
        fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
    }

    /// `mi_malloc`'s alignment guarantee (`MI_MAX_ALIGN_SIZE`).
    const MIN_ALIGN: usize = 16;

    pub struct Mi;

    #[inline(always)]
    fn plain(align: usize, size: usize) -> bool {
        align <= MIN_ALIGN && align <= size
    }

    // SAFETY: every block comes from mimalloc and goes back to it
    // (`mi_free` frees aligned blocks too); a plain block satisfies the
    // layout's alignment (above), the others come from `MiMalloc`. A
    // realloc keeps the layout's alignment: `mi_realloc` takes any mimalloc
    // block (one from `MiMalloc` too) and returns it in place (already so
    // aligned) or a plain block of the new size; above 16 bytes, or below
    // the alignment, `MiMalloc` moves it with `mi_realloc_aligned`.
    unsafe impl GlobalAlloc for Mi {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if plain(l.align(), l.size()) {
                unsafe { mi_malloc(l.size()) }.cast()
            } else {
                unsafe { mimalloc::MiMalloc.alloc(l) }
            }
        }

        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if plain(l.align(), l.size()) {
                unsafe { mi_zalloc(l.size()) }.cast()
            } else {
                unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
            }
        }

        unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
            unsafe { mi_free(p.cast()) }
        }

        unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
            if plain(l.align(), new_size) {
                unsafe { mi_realloc(p.cast(), new_size) }.cast()
            } else {
                unsafe { mimalloc::MiMalloc.realloc(p, l, new_size) }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Allocates `size` bytes aligned to `align`, fills them, moves them
        /// to `new` bytes with realloc and frees them, checking that both
        /// blocks are so aligned and that realloc kept the bytes.
        fn alloc_realloc_free(size: usize, align: usize, new: usize) {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; the block is freed once, with the
            // layout realloc gave it, after its last use.
            unsafe {
                let p = Mi.alloc(l);
                assert!(
                    !p.is_null() && (p as usize).is_multiple_of(align),
                    "alloc {l:?}: {p:?}"
                );
                for i in 0..size {
                    *p.add(i) = i as u8 | 1;
                }
                let q = Mi.realloc(p, l, new);
                assert!(
                    !q.is_null() && (q as usize).is_multiple_of(align),
                    "realloc {l:?} to {new}: {q:?}"
                );
                assert!(
                    (0..size.min(new)).all(|i| *q.add(i) == i as u8 | 1),
                    "realloc {l:?} to {new} lost bytes"
                );
                Mi.dealloc(q, Layout::from_size_align(new, align).unwrap());
            }
        }

        /// Every block is aligned as its layout asks, through alloc,
        /// alloc_zeroed (zeroed) and realloc (contents kept), for every
        /// alignment up to 4 KiB and sizes around each size class.
        #[test]
        fn blocks_are_aligned_zeroed_and_moved_whole() {
            let sizes = (1..=200)
                .chain([255, 256, 257, 1000, 1024, 4095, 4096, 70_000])
                .chain((1..=12).map(|k| k * 73_728)); // past the medium size class too
            let mut checked = 0;
            for align in (0..=12).map(|k| 1usize << k) {
                for size in sizes.clone().filter(|s| s % align == 0) {
                    // Leaves freed blocks filled (non-zero) for alloc_zeroed.
                    alloc_realloc_free(size, align, size * 3);
                    let l = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: a non-zero size; the block is freed once,
                    // with its layout, after its last use.
                    unsafe {
                        let z = Mi.alloc_zeroed(l);
                        assert!(
                            !z.is_null() && (z as usize).is_multiple_of(align),
                            "alloc_zeroed {l:?}: {z:?}"
                        );
                        assert!(
                            (0..size).all(|i| *z.add(i) == 0),
                            "alloc_zeroed {l:?} not zero"
                        );
                        Mi.dealloc(z, l);
                    }
                    checked += 1;
                }
            }
            assert!(checked > 300, "{checked} layouts");
        }

        /// A realloc across the two paths: a `MiMalloc` block (size below
        /// its alignment, or alignment above 16) grown or shrunk through
        /// `mi_realloc`, and a plain block shrunk below its alignment,
        /// which goes to `MiMalloc`.
        #[test]
        fn realloc_moves_blocks_between_the_two_paths() {
            // (size, align, new size)
            let cases = [
                (4, 8, 64),
                (8, 16, 32),
                (64, 16, 8),
                (48, 16, 4),
                (64, 32, 640),
                (4096, 4096, 64),
                (100, 4, 3),
            ];
            for (size, align, new) in cases {
                alloc_realloc_free(size, align, new);
            }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3).
#[cfg(madsim)]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

#[cfg(madsim)]
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    // `RUST_LOG=bookstore::tartu=info cargo sim run ...`: the services'
    // logs on stderr (they do not change what a run does).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    // mimalloc returns freed pages to the OS 10 ms after they empty, and
    // each reuse faults them in again, zeroed by the kernel: checkout seed 3
    // took 9,386 page faults instead of 573, 15 % of its time. A seed's
    // process is short-lived, so it keeps them (`MIMALLOC_PURGE_DELAY=-1`).
    // SAFETY: sets an option of the allocator this binary links; any value
    // is valid.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    bookstore::pad::graphql::warm_up();
    harness::cli::main(sim::app())
}
