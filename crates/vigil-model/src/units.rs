//! Units: UCUM codes as a typed enum, one unit enum per quantity, and conversions to
//! the canonical units of `clinical/rules.md` §0.1 and §3.2.
//!
//! | quantity | canonical | accepted on the wire | conversion (then §0.12 rounding) |
//! |---|---|---|---|
//! | blood pressure | mmHg | `mm[Hg]`, `kPa` | mmHg = kPa × 7.5, to 1 mmHg |
//! | glucose | mmol/L | `mmol/L`, `mg/dL` | mmol/L = mg/dL ÷ 18.0, to 0.1 |
//! | temperature | °C | `Cel`, `[degF]` | °C = (°F − 32) × 5/9, to 0.1 |
//! | weight | kg | `kg`, `[lb_av]`, `jin` | kg = lb × 0.4536; kg = 斤 × 0.5, to 0.1 |
//! | SpO2, perfusion | % | `%` | — |
//! | rates | /min | `/min` | — |
//! | ECG samples | µV | `uV` | — |
//!
//! `jin` (斤, exactly 0.5 kg) is not a UCUM unit; the wire contract adds it because
//! Chinese household scales report it.

use std::fmt;

use crate::round::{round_half_up, round_to_i32};

/// Every unit the wire contract knows, by its UCUM code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// `mm[Hg]`
    MmHg,
    /// `kPa`
    KPa,
    /// `mmol/L`
    MmolPerL,
    /// `mg/dL`
    MgPerDl,
    /// `%`
    Percent,
    /// `/min`
    PerMin,
    /// `Cel`
    Cel,
    /// `[degF]`
    DegF,
    /// `kg`
    Kg,
    /// `[lb_av]`
    LbAv,
    /// `jin` (斤, 0.5 kg; not UCUM)
    Jin,
    /// `uV`
    MicroVolt,
}

/// A unit string that is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// A common spelling of a known unit that is not its UCUM code.
    #[error("unit '{found}' is not UCUM; use '{use_instead}'")]
    NotUcum {
        found: String,
        use_instead: &'static str,
    },
    /// Not a unit the wire contract knows at all.
    #[error("unit '{found}' is unknown")]
    Unknown { found: String },
}

impl Unit {
    /// Every unit, for documentation and tests.
    pub const ALL: &'static [Unit] = &[
        Unit::MmHg,
        Unit::KPa,
        Unit::MmolPerL,
        Unit::MgPerDl,
        Unit::Percent,
        Unit::PerMin,
        Unit::Cel,
        Unit::DegF,
        Unit::Kg,
        Unit::LbAv,
        Unit::Jin,
        Unit::MicroVolt,
    ];

    /// The UCUM code (case-sensitive, as the wire carries it).
    pub fn ucum(self) -> &'static str {
        match self {
            Unit::MmHg => "mm[Hg]",
            Unit::KPa => "kPa",
            Unit::MmolPerL => "mmol/L",
            Unit::MgPerDl => "mg/dL",
            Unit::Percent => "%",
            Unit::PerMin => "/min",
            Unit::Cel => "Cel",
            Unit::DegF => "[degF]",
            Unit::Kg => "kg",
            Unit::LbAv => "[lb_av]",
            Unit::Jin => "jin",
            Unit::MicroVolt => "uV",
        }
    }

    /// Parses a UCUM code exactly. A familiar non-UCUM spelling ("mmHg", "mg/dl",
    /// "°C", "lbs", "斤", "bpm") gets an error that names the code to use instead.
    pub fn from_ucum(s: &str) -> Result<Unit, UnitError> {
        if let Some(u) = Unit::ALL.iter().find(|u| u.ucum() == s) {
            return Ok(*u);
        }
        match non_ucum_alias(s) {
            Some(u) => Err(UnitError::NotUcum {
                found: s.to_owned(),
                use_instead: u.ucum(),
            }),
            None => Err(UnitError::Unknown {
                found: s.to_owned(),
            }),
        }
    }
}

/// Spellings integrators actually send, mapped to the unit they mean.
fn non_ucum_alias(s: &str) -> Option<Unit> {
    let folded = s.trim().to_lowercase();
    let u = match folded.as_str() {
        "mmhg" | "mm hg" | "mm[hg]" | "mm_hg" | "torr" => Unit::MmHg,
        "kpa" => Unit::KPa,
        "mmol/l" | "mmol" | "mm/l" => Unit::MmolPerL,
        "mg/dl" | "mg%" | "mgdl" => Unit::MgPerDl,
        "percent" | "pct" | "%spo2" => Unit::Percent,
        "bpm" | "/min" | "1/min" | "beats/min" | "{beats}/min" | "min-1" | "per min" => {
            Unit::PerMin
        }
        "°c" | "℃" | "c" | "degc" | "deg c" | "cel" | "celsius" => Unit::Cel,
        "°f" | "℉" | "f" | "degf" | "[degf]" | "deg f" | "fahrenheit" => Unit::DegF,
        "kg" | "kgs" | "kilogram" | "kilograms" | "公斤" => Unit::Kg,
        "lb" | "lbs" | "[lb_av]" | "pound" | "pounds" => Unit::LbAv,
        "斤" | "jin" | "catty" => Unit::Jin,
        "µv" | "μv" | "uv" | "microvolt" | "microvolts" => Unit::MicroVolt,
        _ => return None,
    };
    Some(u)
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ucum())
    }
}

macro_rules! quantity_unit {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// The units of this quantity the wire accepts.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The general unit.
            pub fn unit(self) -> Unit {
                match self {
                    $($name::$variant => Unit::$variant),+
                }
            }

            /// The UCUM code.
            pub fn ucum(self) -> &'static str {
                self.unit().ucum()
            }

        }

        impl TryFrom<Unit> for $name {
            type Error = Unit;
            fn try_from(u: Unit) -> Result<Self, Unit> {
                match u {
                    $(Unit::$variant => Ok($name::$variant),)+
                    #[allow(unreachable_patterns)]
                    other => Err(other),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.ucum())
            }
        }
    };
}

quantity_unit!(
    /// Units of a blood pressure (and of its mean).
    PressureUnit { MmHg, KPa }
);
quantity_unit!(
    /// Units of a capillary glucose.
    GlucoseUnit { MmolPerL, MgPerDl }
);
quantity_unit!(
    /// Units of a body temperature.
    TemperatureUnit { Cel, DegF }
);
quantity_unit!(
    /// Units of a body weight.
    WeightUnit { Kg, LbAv, Jin }
);
quantity_unit!(
    /// The unit of SpO2.
    PercentUnit { Percent }
);
quantity_unit!(
    /// The unit of heart and pulse rates.
    RateUnit { PerMin }
);
quantity_unit!(
    /// The unit of ECG samples.
    VoltageUnit { MicroVolt }
);

/// mmHg per kPa as the Chinese hypertension guideline prints it (1 mmHg = 0.133 kPa).
pub const MMHG_PER_KPA: f64 = 7.5;
/// mg/dL per mmol/L for glucose (the guideline factor; 18.016 gives the same roundings).
pub const MGDL_PER_MMOLL: f64 = 18.0;
/// kg per avoirdupois pound, as `clinical/rules.md` §3.2 gives it.
pub const KG_PER_LB: f64 = 0.4536;
/// kg per 斤 (exact).
pub const KG_PER_JIN: f64 = 0.5;

impl PressureUnit {
    /// Converts to mmHg, rounded half-up to 1 mmHg (§0.12).
    pub fn to_mmhg(self, value: f64) -> i32 {
        match self {
            PressureUnit::MmHg => round_to_i32(value),
            PressureUnit::KPa => round_to_i32(value * MMHG_PER_KPA),
        }
    }
}

impl GlucoseUnit {
    /// Converts to mmol/L, rounded half-up to 0.1 mmol/L (§0.1, §0.12).
    pub fn to_mmol_per_l(self, value: f64) -> f64 {
        match self {
            GlucoseUnit::MmolPerL => round_half_up(value, 1),
            GlucoseUnit::MgPerDl => round_half_up(value / MGDL_PER_MMOLL, 1),
        }
    }
}

impl TemperatureUnit {
    /// Converts to °C, rounded half-up to 0.1 °C.
    pub fn to_celsius(self, value: f64) -> f64 {
        match self {
            TemperatureUnit::Cel => round_half_up(value, 1),
            TemperatureUnit::DegF => round_half_up((value - 32.0) * 5.0 / 9.0, 1),
        }
    }
}

impl WeightUnit {
    /// Converts to kg, rounded half-up to 0.1 kg.
    pub fn to_kg(self, value: f64) -> f64 {
        match self {
            WeightUnit::Kg => round_half_up(value, 1),
            WeightUnit::LbAv => round_half_up(value * KG_PER_LB, 1),
            WeightUnit::Jin => round_half_up(value * KG_PER_JIN, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every paired value `clinical/rules.md` prints (§0.1 glucose pairs; §3.2 traps).
    #[test]
    fn glucose_pairs_printed_by_the_guidelines() {
        for (mg, mmol) in [
            (70.0, 3.9),
            (54.0, 3.0),
            (126.0, 7.0),
            (250.0, 13.9),
            (300.0, 16.7),
            (600.0, 33.3),
        ] {
            assert_eq!(GlucoseUnit::MgPerDl.to_mmol_per_l(mg), mmol, "{mg} mg/dL");
            assert_eq!(GlucoseUnit::MmolPerL.to_mmol_per_l(mmol), mmol);
        }
    }

    #[test]
    fn the_18_016_factor_would_give_the_same_roundings() {
        for mg in [70.0, 54.0, 126.0, 250.0, 300.0, 600.0_f64] {
            assert_eq!(
                round_half_up(mg / 18.016, 1),
                GlucoseUnit::MgPerDl.to_mmol_per_l(mg)
            );
        }
    }

    #[test]
    fn kpa_crisis_pair_converts_to_180_over_110() {
        assert_eq!(PressureUnit::KPa.to_mmhg(24.0), 180);
        assert_eq!(PressureUnit::KPa.to_mmhg(14.7), 110);
        assert_eq!(PressureUnit::MmHg.to_mmhg(180.0), 180);
    }

    #[test]
    fn fahrenheit_102_2_is_39_0_celsius() {
        assert_eq!(TemperatureUnit::DegF.to_celsius(102.2), 39.0);
        assert_eq!(TemperatureUnit::DegF.to_celsius(98.6), 37.0);
        assert_eq!(TemperatureUnit::DegF.to_celsius(97.7), 36.5);
        // Exactly 35.85 °C; binary arithmetic gives 35.849999999999994.
        assert_eq!(TemperatureUnit::DegF.to_celsius(96.53), 35.9);
        assert_eq!(TemperatureUnit::Cel.to_celsius(38.05), 38.1);
    }

    #[test]
    fn weight_130_jin_is_65_kg_and_pounds_use_0_4536() {
        assert_eq!(WeightUnit::Jin.to_kg(130.0), 65.0);
        assert_eq!(WeightUnit::LbAv.to_kg(143.3), 65.0);
        assert_eq!(WeightUnit::LbAv.to_kg(100.0), 45.4);
        assert_eq!(WeightUnit::Kg.to_kg(65.04), 65.0);
    }

    #[test]
    fn ucum_codes_parse_and_common_misspellings_name_the_code_to_use() {
        for u in Unit::ALL {
            assert_eq!(Unit::from_ucum(u.ucum()), Ok(*u));
        }
        let e = Unit::from_ucum("mmHg").unwrap_err();
        assert_eq!(e.to_string(), "unit 'mmHg' is not UCUM; use 'mm[Hg]'");
        assert_eq!(
            Unit::from_ucum("mg/dl").unwrap_err().to_string(),
            "unit 'mg/dl' is not UCUM; use 'mg/dL'"
        );
        assert_eq!(
            Unit::from_ucum("°C").unwrap_err().to_string(),
            "unit '°C' is not UCUM; use 'Cel'"
        );
        assert_eq!(
            Unit::from_ucum("furlong").unwrap_err(),
            UnitError::Unknown {
                found: "furlong".into()
            }
        );
    }

    #[test]
    fn a_unit_of_another_quantity_does_not_narrow() {
        assert_eq!(PressureUnit::try_from(Unit::Kg), Err(Unit::Kg));
        assert_eq!(PressureUnit::try_from(Unit::KPa), Ok(PressureUnit::KPa));
    }

    proptest! {
        /// Exact integer arithmetic: round_half_up(m / 18, 1) = floor((20m + 18) / 36) / 10.
        #[test]
        fn integer_mg_per_dl_converts_exactly(m in 0u32..=2000) {
            let expected = f64::from((20 * m + 18) / 36) / 10.0;
            prop_assert_eq!(GlucoseUnit::MgPerDl.to_mmol_per_l(f64::from(m)), expected);
        }

        /// kPa with one decimal (as cuffs display it): mmHg = round(kPa×10 × 3 / 4).
        #[test]
        fn one_decimal_kpa_converts_exactly(t in 0u32..=600) {
            let kpa: f64 = format!("{}.{}", t / 10, t % 10).parse().unwrap();
            let expected = ((t * 3 * 2 + 4) / 8) as i32; // floor(0.75 t + 0.5)
            prop_assert_eq!(PressureUnit::KPa.to_mmhg(kpa), expected);
        }
    }
}
