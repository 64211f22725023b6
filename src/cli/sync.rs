//! `switchboard sync KIND/NAME`.
