//! Numbers as people read them: byte sizes, durations, milliseconds.
//! Shared by the Settings and Deliveries pages.

/// `512 B`, `1.5 KiB`, `1 MiB`: binary units, one decimal when it matters.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// `45 s`, `5 min`, `90 s`, `2 h`: the largest unit that divides evenly.
pub fn human_secs(secs: u64) -> String {
    match secs {
        0 => "0 s".to_owned(),
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `1 day`, `30 days`.
pub fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A processing time: `0.42 ms`, `12.5 ms`, `130 ms`; `—` when unknown.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) if ms < 100.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_048_576), "1 MiB");
        assert_eq!(human_bytes(67_108_864), "64 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn durations_use_the_largest_even_unit() {
        assert_eq!(human_secs(0), "0 s");
        assert_eq!(human_secs(10), "10 s");
        assert_eq!(human_secs(90), "90 s");
        assert_eq!(human_secs(300), "5 min");
        assert_eq!(human_secs(7_200), "2 h");
        assert_eq!(human_secs(86_400), "1 day");
        assert_eq!(plural(30, "day"), "30 days");
    }

    #[test]
    fn milliseconds_keep_two_significant_places() {
        assert_eq!(millis(None), "—");
        assert_eq!(millis(Some(0.4217)), "0.42 ms");
        assert_eq!(millis(Some(12.54)), "12.5 ms");
        assert_eq!(millis(Some(130.4)), "130 ms");
    }
}
