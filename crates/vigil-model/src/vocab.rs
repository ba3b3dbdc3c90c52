//! The closed vocabularies of wire contract v1.
//!
//! A value outside a vocabulary is an error at decode time, so every variant here is
//! something the rules and dashboards know how to treat. `as_str` gives the wire
//! spelling; `parse` is its inverse; `ALL` lists the vocabulary for error messages.

use std::fmt;

/// A text that is not in a vocabulary; says which words are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not one of {}", expected_list(.expected))]
pub struct VocabError {
    pub found: String,
    pub expected: &'static [&'static str],
}

/// `'a', 'b', 'c'`: a vocabulary quoted for an error message.
pub fn expected_list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in the order the contract lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every wire spelling, in the same order.
            pub const WORDS: &'static [&'static str] = &[$($text),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the wire spelling (exact, case-sensitive).
            pub fn parse(s: &str) -> Result<Self, VocabError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(VocabError { found: s.to_owned(), expected: Self::WORDS }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = VocabError;
            fn from_str(s: &str) -> Result<Self, VocabError> {
                Self::parse(s)
            }
        }
    };
}

vocabulary!(
    /// How urgent an alert is (`clinical/rules.md` §0).
    Severity {
        /// Possibly life-threatening now (≈ a 危急值): immediately, 24×7; ack in 15 min.
        Critical = "CRITICAL",
        /// Urgent, same-day clinical contact; ack in 60 min.
        High = "HIGH",
        /// Needs clinical review within a working day; held in quiet hours.
        Medium = "MEDIUM",
        /// Informational, adherence or data gaps.
        Low = "LOW",
    }
);

vocabulary!(
    /// Why a reading was quarantined instead of stored as the patient's (never dropped:
    /// a quarantined reading is kept with its reason, raw form and gateway).
    QuarantineReason {
        /// Outside the plausibility range of `clinical/rules.md` §3.1.
        OutOfRange = "out_of_range",
        /// Diastolic at or above systolic.
        DiastolicGeSystolic = "diastolic_ge_systolic",
        /// Plausible only in another unit (126 "mmol/L"), or a weight jump > 5 kg.
        UnitSuspect = "unit_suspect",
        /// Measured before 2010, before the device's registration, or > 5 min in the future.
        InvalidTimestamp = "invalid_timestamp",
        /// The oximeter reported poor signal or low perfusion.
        LowSignalQuality = "low_signal_quality",
        /// The device is not in the registry.
        UnknownDevice = "unknown_device",
        /// The device is bound to another gateway than the one that published it.
        DeviceNotOnGateway = "device_not_on_gateway",
        /// No assignment covers the device at the measurement time (re-processed when one is added).
        UnassignedDevice = "unassigned_device",
        /// The reading does not follow the wire contract.
        Malformed = "malformed",
    }
);

vocabulary!(
    /// A patient's chronic condition (registry and replay profiles); it selects the
    /// rules that apply and what monitoring is prescribed.
    Condition {
        Hypertension = "hypertension",
        Type2Diabetes = "type2_diabetes",
        Type1Diabetes = "type1_diabetes",
        InsulinTreated = "insulin_treated",
        CoronaryHeartDisease = "coronary_heart_disease",
        HeartFailure = "heart_failure",
        AtrialFibrillation = "atrial_fibrillation",
        Copd = "copd",
        PostDischargeCardiac = "post_discharge_cardiac",
        Pregnancy = "pregnancy",
    }
);

vocabulary!(
    /// The `type` of a reading.
    ReadingType {
        Bp = "bp",
        Glucose = "glucose",
        Spo2 = "spo2",
        HeartRate = "heart_rate",
        Temperature = "temperature",
        Weight = "weight",
        Ecg = "ecg",
        EcgWaveform = "ecg_waveform",
    }
);

vocabulary!(
    /// The rhythm finding of an `ecg` episode summary.
    EcgFinding {
        SinusRhythm = "sinus_rhythm",
        AtrialFibrillation = "atrial_fibrillation",
        AtrialFlutter = "atrial_flutter",
        Svt = "svt",
        VentricularTachycardia = "ventricular_tachycardia",
        VentricularFibrillation = "ventricular_fibrillation",
        Torsades = "torsades",
        Pause = "pause",
        AvBlockComplete = "av_block_complete",
        StElevation = "st_elevation",
        Other = "other",
    }
);

vocabulary!(
    /// How many leads an ECG device records.
    LeadConfig {
        SingleLead = "single_lead",
        ThreeLead = "three_lead",
        TwelveLead = "twelve_lead",
    }
);

vocabulary!(
    /// Which device measured a heart rate.
    HrSource {
        BpCuff = "bp_cuff",
        Oximeter = "oximeter",
        EcgPatch = "ecg_patch",
        HrStrap = "hr_strap",
        Other = "other",
    }
);

vocabulary!(
    /// What the patient was doing; HR rules evaluate only `rest` or absent (§0.13).
    Activity {
        Rest = "rest",
        Active = "active",
        Sleep = "sleep",
    }
);

vocabulary!(
    /// Where a body temperature was taken; absent means axillary.
    TemperatureSite {
        Axillary = "axillary",
        Oral = "oral",
        Tympanic = "tympanic",
        Rectal = "rectal",
        Forehead = "forehead",
    }
);

vocabulary!(
    /// Meal context of a capillary glucose; absent means `random`.
    MealContext {
        Fasting = "fasting",
        Preprandial = "preprandial",
        Postprandial = "postprandial",
        Bedtime = "bedtime",
        Night = "night",
        Random = "random",
    }
);

vocabulary!(
    /// A glucometer's out-of-range display: above (`HI`) or below (`LO`) what it measures.
    GlucoseFlag {
        Hi = "HI",
        Lo = "LO",
    }
);

vocabulary!(
    /// Oximeter signal quality; `poor` readings are quarantined, not evaluated.
    SignalQuality {
        Good = "good",
        Poor = "poor",
    }
);

vocabulary!(
    /// Patient-reported red-flag symptoms (规范 referral criteria).
    Symptom {
        /// 意识改变
        AlteredConsciousness = "altered_consciousness",
        /// 剧烈头痛或头晕
        SevereHeadacheOrDizziness = "severe_headache_or_dizziness",
        /// 恶心呕吐
        NauseaVomiting = "nausea_vomiting",
        /// 视力模糊
        BlurredVision = "blurred_vision",
        /// 眼痛
        EyePain = "eye_pain",
        /// 心悸
        Palpitations = "palpitations",
        /// 胸闷
        ChestTightness = "chest_tightness",
        /// 喘憋不能平卧
        Orthopnea = "orthopnea",
        /// 呼气烂苹果味
        KetoticBreath = "ketotic_breath",
        /// 深大呼吸
        KussmaulBreathing = "kussmaul_breathing",
        /// 头晕
        Dizziness = "dizziness",
        /// 晕厥
        Syncope = "syncope",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_variant() {
        for v in EcgFinding::ALL {
            assert_eq!(EcgFinding::parse(v.as_str()), Ok(*v));
        }
        for v in Symptom::ALL {
            assert_eq!(Symptom::parse(v.as_str()), Ok(*v));
        }
        assert_eq!(EcgFinding::ALL.len(), 11);
        assert_eq!(Symptom::ALL.len(), 12);
    }

    #[test]
    fn an_unknown_word_names_the_vocabulary() {
        let e = GlucoseFlag::parse("hi").unwrap_err();
        assert_eq!(e.to_string(), "\"hi\" is not one of 'HI', 'LO'");
    }
}
