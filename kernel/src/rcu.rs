//! RCU (placeholder hooks; the implementation is issue 4).
pub fn note_context_switch() {}
pub fn note_idle() {}
pub fn note_tick(_from_user: bool) {}
