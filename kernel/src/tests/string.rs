//! The kernel's own `memcpy` and `memset` (`arch/string.rs`): every length
//! from 0 to past three 64-byte blocks, at every alignment of source and
//! destination, writes exactly the bytes asked for and nothing beside them.
use crate::arch::string::{memcpy, memset};
use crate::{kassert, ktest};

const BUF: usize = 300;
const MAX_LEN: usize = 200;
/// What the bytes around the destination hold; a store outside the range
/// shows as a changed guard byte.
const GUARD: u8 = 0xee;

fn source_byte(i: usize) -> u8 {
    (i * 7 + 3) as u8
}

ktest!(
    fn memcpy_copies_exactly_the_range() {
        let src: [u8; BUF] = core::array::from_fn(source_byte);
        let mut dst = [0u8; BUF];
        for s_off in 0..8 {
            for d_off in 0..8 {
                for n in 0..=MAX_LEN {
                    dst.fill(GUARD);
                    // SAFETY: both ranges lie inside their 300-byte arrays
                    // (offset < 8, n <= 200) and the arrays do not overlap.
                    unsafe { memcpy(dst.as_mut_ptr().add(d_off), src.as_ptr().add(s_off), n) };
                    for (i, &b) in dst.iter().enumerate() {
                        let want = if (d_off..d_off + n).contains(&i) {
                            src[i - d_off + s_off]
                        } else {
                            GUARD
                        };
                        kassert!(
                            b == want,
                            "memcpy(dst+{}, src+{}, {}): byte {} is {:#x}, expected {:#x}",
                            d_off,
                            s_off,
                            n,
                            i,
                            b,
                            want
                        );
                    }
                }
            }
        }
        Ok(())
    }
);

ktest!(
    fn memset_sets_exactly_the_range() {
        let mut dst = [0u8; BUF];
        for d_off in 0..8 {
            for n in 0..=MAX_LEN {
                dst.fill(GUARD);
                // The value's high bits must be ignored (C passes an int).
                let c = 0x1234_5600 | (n as i32 & 0xff);
                // SAFETY: the range lies inside the 300-byte array.
                unsafe { memset(dst.as_mut_ptr().add(d_off), c, n) };
                for (i, &b) in dst.iter().enumerate() {
                    let want = if (d_off..d_off + n).contains(&i) {
                        c as u8
                    } else {
                        GUARD
                    };
                    kassert!(
                        b == want,
                        "memset(dst+{}, {:#x}, {}): byte {} is {:#x}, expected {:#x}",
                        d_off,
                        c,
                        n,
                        i,
                        b,
                        want
                    );
                }
            }
        }
        Ok(())
    }
);
