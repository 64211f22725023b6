//! Contacts, meetings and tasks through Microsoft Graph, for a Mailbox on a `microsoft365`
//! provider.
//!
//! - `calendar.rs`: the `CalendarRemote` over calendars (`calendarView/delta`) and To Do lists.

pub mod calendar;
