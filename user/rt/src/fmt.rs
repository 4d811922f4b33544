//! Fixed-point output without floating point: seconds with three decimals and
//! rates per second, rounded to nearest as C's `printf("%.3f")` and `"%.0f"`
//! would print them (ties round up here; printf rounds the binary value, so
//! an exact tie can differ in the last digit).

use core::fmt;

/// Nanoseconds printed as seconds with three decimals (`1.235`).
#[derive(Clone, Copy, Debug)]
pub struct Seconds3(pub u64);

impl fmt::Display for Seconds3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = (u128::from(self.0) + 500_000) / 1_000_000;
        write!(f, "{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// `count / (ns / 1e9)` rounded to the nearest integer; 0 if `ns` is 0.
pub fn per_second(count: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    let ns = u128::from(ns);
    ((u128::from(count) * 1_000_000_000 + ns / 2) / ns) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(Seconds3(5_000_000_000).to_string(), "5.000");
        assert_eq!(Seconds3(1_234_499_999).to_string(), "1.234");
        assert_eq!(Seconds3(1_234_500_000).to_string(), "1.235");
        assert_eq!(Seconds3(999_999_999).to_string(), "1.000");
        assert_eq!(Seconds3(0).to_string(), "0.000");
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(1000, 2_000_000_000), 500);
        assert_eq!(per_second(1, 3_000_000_000), 0);
        assert_eq!(per_second(2, 3_000_000_000), 1);
        assert_eq!(per_second(u64::MAX, 1_000_000_000), u64::MAX);
        assert_eq!(per_second(5, 0), 0);
    }
}
