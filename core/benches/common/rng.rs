//! The benches' random numbers: a small deterministic generator (xorshift), so that every run
//! builds the same vault. Included by each bench with `#[path = "common/rng.rs"] mod rng;`.

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
