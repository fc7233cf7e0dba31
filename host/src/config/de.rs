//! Reading values the way distribution's Go YAML parser (yaml.v2, YAML 1.1)
//! read them, so that existing `config.yml` files keep working: a number
//! where text is expected becomes its text (`version: 0.1`, `secret: 1234`),
//! `yes`/`no`/`on`/`off` are booleans, durations are Go durations.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::StorageConfig;

/// The keys of `storage` that configure the registry rather than name the
/// driver: every other key is the driver (distribution's `Storage.Type`).
pub(super) const NON_DRIVER_KEYS: [&str; 6] = ["delete", "redirect", "maintenance", "cache", "gc", "retention"];

/// Text from any YAML scalar; numbers are rendered as YAML renders them.
struct Text(String);

struct TextVisitor(&'static str);

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(serde_norway::Number::from(v).to_string()))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor("a string"))
    }
}

/// A string field that also takes a number or a boolean, as Go's parser did.
pub(super) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
}

/// `log.fields`: a map of scalars.
pub(super) fn text_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let map = std::collections::BTreeMap::<String, Text>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// `http.headers`: header name to a list of values. A single scalar is taken
/// as a one-value list (distribution wants `[value]`; `value` alone is an
/// easy slip and means the same).
pub(super) fn header_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, D::Error> {
    struct Values(Vec<String>);
    struct ValuesVisitor;
    impl<'de> Visitor<'de> for ValuesVisitor {
        type Value = Values;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of header values")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
            let mut out = Vec::new();
            while let Some(Text(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Values(out))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Values, E> {
            Ok(Values(vec![v.to_owned()]))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Values, E> {
            Ok(Values(vec![v.to_string()]))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Values, E> {
            Ok(Values(vec![v.to_string()]))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Values, E> {
            Ok(Values(vec![v.to_string()]))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Values, E> {
            TextVisitor("").visit_f64(v).map(|t| Values(vec![t.0]))
        }
    }
    impl<'de> Deserialize<'de> for Values {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ValuesVisitor)
        }
    }
    let map = std::collections::BTreeMap::<String, Values>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// A boolean, with YAML 1.1's words for it (`yes`, `on`, ...), which Go's
/// parser read as booleans and YAML 1.2 reads as strings.
pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl Visitor<'_> for FlagVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean (true or false)")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v {
                "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Ok(true),
                "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Ok(false),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
    }
    d.deserialize_any(FlagVisitor)
}

/// A Go duration (`"300ms"`, `"1h30m"`, `"168h"`), or a bare integer, which
/// Go reads as nanoseconds.
struct GoDuration(Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"10s\", \"1h30m\" or \"300ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_duration(v).map(GoDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                let nanos = u64::try_from(v).map_err(|_| E::custom(format!("negative duration {v}")))?;
                Ok(GoDuration(Duration::from_nanos(nanos)))
            }
        }
        d.deserialize_any(DurationVisitor)
    }
}

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(GoDuration::deserialize(d)?.0)
}

pub(super) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<GoDuration>::deserialize(d)?.map(|g| g.0))
}

pub(super) fn ser_duration<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*v))
}

pub(super) fn ser_opt_duration<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_duration(v, s),
        None => s.serialize_none(),
    }
}

/// Parses Go's `time.ParseDuration` syntax: a sequence of decimal numbers,
/// each with an optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`); `"0"` alone needs no unit. Negative durations mean nothing in
/// this configuration and are refused.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len())),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(invalid("missing unit (ns, us, ms, s, m or h)")),
            other => return Err(invalid(&format!("unknown unit {other:?} (ns, us, ms, s, m or h)"))),
        };
        // Digits beyond what fits are below a nanosecond anyway, as in Go.
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid("too large"))?
        };
        let frac = &frac[..frac.len().min(20)];
        let frac_nanos = match frac.parse::<u128>() {
            Ok(digits) => digits * unit_nanos / 10u128.pow(frac.len() as u32),
            Err(_) => 0,
        };
        total = int
            .checked_mul(unit_nanos)
            .and_then(|n| n.checked_add(frac_nanos))
            .and_then(|n| n.checked_add(total))
            .ok_or_else(|| invalid("too large"))?;
        rest = after;
    }
    // Go's durations are an i64 of nanoseconds.
    if total > i64::MAX as u128 {
        return Err(invalid("too large"));
    }
    if negative && total != 0 {
        return Err(invalid("must not be negative"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Renders a duration in the largest unit that keeps it exact, so that it
/// reads back the same (`168h`, `90s`, `1500ms`).
pub(super) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

/// Driver parameters in the order they were written, as text: the plugin
/// receives strings, numbers and booleans rendered as YAML renders them.
struct Params(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of driver parameters")
            }
            // `inmemory:` with nothing after it: a driver without parameters.
            fn visit_unit<E: de::Error>(self) -> Result<Params, E> {
                Ok(Params(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    let value: ParamValue = map.next_value()?;
                    out.push((key, value.0 .0));
                }
                Ok(Params(out))
            }
        }
        d.deserialize_any(ParamsVisitor)
    }
}

struct ParamValue(Text);

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor("a driver parameter: a string, number or boolean"))
            .map(ParamValue)
    }
}

/// `storage`: exactly one driver section under any name, beside the
/// registry's own storage settings.
impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StorageVisitor;
        impl<'de> Visitor<'de> for StorageVisitor {
            type Value = StorageConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map naming one storage driver, e.g. `filesystem: {rootdirectory: /var/lib/registry}`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StorageConfig, A::Error> {
                let mut storage = StorageConfig {
                    driver: String::new(),
                    parameters: Vec::new(),
                    delete: Default::default(),
                    redirect: Default::default(),
                    maintenance: Default::default(),
                    cache: Default::default(),
                    gc: Default::default(),
                    retention: Default::default(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "delete" => storage.delete = map.next_value()?,
                        "redirect" => storage.redirect = map.next_value()?,
                        "maintenance" => storage.maintenance = map.next_value()?,
                        "cache" => storage.cache = map.next_value()?,
                        "gc" => storage.gc = map.next_value()?,
                        "retention" => storage.retention = map.next_value()?,
                        _ if !storage.driver.is_empty() => {
                            return Err(de::Error::custom(format!(
                                "more than one storage driver: `{}` and `{key}`",
                                storage.driver
                            )))
                        }
                        _ => {
                            storage.parameters = map.next_value::<Params>()?.0;
                            storage.driver = key;
                        }
                    }
                }
                if storage.driver.is_empty() {
                    return Err(de::Error::custom("no storage driver is named"));
                }
                Ok(storage)
            }
        }
        d.deserialize_map(StorageVisitor)
    }
}

impl Serialize for StorageConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct ParamsRef<'a>(&'a [(String, String)]);
        impl Serialize for ParamsRef<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry(&self.driver, &ParamsRef(&self.parameters))?;
        map.serialize_entry("delete", &self.delete)?;
        map.serialize_entry("redirect", &self.redirect)?;
        map.serialize_entry("maintenance", &self.maintenance)?;
        map.serialize_entry("cache", &self.cache)?;
        map.serialize_entry("gc", &self.gc)?;
        map.serialize_entry("retention", &self.retention)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations_parse() {
        let secs = Duration::from_secs;
        for (text, want) in [
            ("10s", secs(10)),
            ("1h", secs(3600)),
            ("168h", secs(168 * 3600)),
            ("300ms", ms(300)),
            ("1h30m", secs(5400)),
            ("2h10m5s", secs(7805)),
            ("1.5h", secs(5400)),
            (".5s", ms(500)),
            ("5.s", secs(5)),
            ("1us", Duration::from_micros(1)),
            ("1µs", Duration::from_micros(1)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+3m", secs(180)),
            ("0.000000001s", Duration::from_nanos(1)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_go_durations_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty"),
            ("10", "missing unit"),
            ("10x", "unknown unit \"x\""),
            ("1.2.3s", "missing unit"),
            ("s", "expected a number"),
            ("-1s", "negative"),
            ("3000000h", "too large"),
            ("10 s", "unknown unit \" s\""),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn durations_format_back_to_what_parses() {
        for d in [
            Duration::ZERO,
            Duration::from_secs(168 * 3600),
            Duration::from_secs(90),
            ms(1500),
            Duration::from_nanos(3),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(168 * 3600)), "168h");
        assert_eq!(format_duration(ms(1500)), "1500ms");
    }
}
