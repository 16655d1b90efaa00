//! Messages shaped for people (docs/SHAPING.md): what happens to a configured service's
//! deliveries beyond one event, one message.

pub mod fallback;
pub mod windows;

pub use windows::{
    Arrival, Arrivals, Coalescing, Gathering, Shape, Shaped, event_of, shape, tally,
};
