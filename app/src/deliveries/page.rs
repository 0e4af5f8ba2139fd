//! The Deliveries page (built next).
