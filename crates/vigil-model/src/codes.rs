//! Clinical codes of each measurement, for export (`clinical/rules.md` §4).
//!
//! Each [`Component`] is one coded observation value (a BP reading yields systolic,
//! diastolic, optionally mean and pulse). [`Code`] carries the LOINC code (the FHIR
//! vital-signs code first), the UCUM unit of the canonical value, the IEEE 11073 MDC
//! reference id with its context-free code (partition × 65536 + term; partition 2 is
//! SCADA), the MDC unit code, and the WS 363 data element where one is known.
//! Codes §4 marks "from memory, check" are carried as given and flagged in
//! `docs/wire-format.md`.

use crate::measurement::Measurement;
use crate::vocab::{HrSource, TemperatureSite};

/// One coded value of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    BpPanel,
    Systolic,
    Diastolic,
    MeanArterial,
    PulseRateCuff,
    PulseRateOximeter,
    HeartRateEcg,
    HeartRate,
    Spo2,
    BodyTemperature,
    BodyTemperatureAxillary,
    BodyTemperatureOral,
    BodyTemperatureTympanic,
    BodyWeight,
    GlucoseCapillaryMmol,
    GlucoseCapillaryMg,
    EcgRhythm,
}

/// The codes of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub loinc: &'static str,
    pub loinc_display: &'static str,
    /// UCUM code of the canonical value (`None` for panels and rhythm).
    pub ucum: Option<&'static str>,
    /// MDC reference id, e.g. `MDC_PRESS_BLD_NONINV_SYS`.
    pub mdc_ref: Option<&'static str>,
    /// Context-free MDC code (partition × 65536 + term), e.g. 150021.
    pub mdc_code: Option<u32>,
    /// MDC unit code of the canonical unit, e.g. 3872 for mmHg.
    pub mdc_unit: Option<u16>,
    /// WS 363 data element (中文 name), where §4 gives one.
    pub ws363: Option<&'static str>,
}

const SCADA: u32 = 2 * 65_536;

impl Component {
    /// The codes of this component.
    pub fn code(self) -> Code {
        let c = |loinc, loinc_display, ucum, mdc_ref, term: Option<u32>, mdc_unit, ws363| Code {
            loinc,
            loinc_display,
            ucum,
            mdc_ref,
            mdc_code: term.map(|t| SCADA + t),
            mdc_unit,
            ws363,
        };
        match self {
            Component::BpPanel => c(
                "85354-9",
                "Blood pressure panel with all children optional",
                None,
                Some("MDC_PRESS_BLD_NONINV"),
                Some(18948),
                None,
                None,
            ),
            Component::Systolic => c(
                "8480-6",
                "Systolic blood pressure",
                Some("mm[Hg]"),
                Some("MDC_PRESS_BLD_NONINV_SYS"),
                Some(18949),
                Some(3872),
                Some("DE04.10.174.00 收缩压(mmHg)"),
            ),
            Component::Diastolic => c(
                "8462-4",
                "Diastolic blood pressure",
                Some("mm[Hg]"),
                Some("MDC_PRESS_BLD_NONINV_DIA"),
                Some(18950),
                Some(3872),
                Some("DE04.10.176.00 舒张压(mmHg)"),
            ),
            Component::MeanArterial => c(
                "8478-0",
                "Mean blood pressure",
                Some("mm[Hg]"),
                Some("MDC_PRESS_BLD_NONINV_MEAN"),
                Some(18951),
                Some(3872),
                None,
            ),
            Component::PulseRateCuff => c(
                "8867-4",
                "Heart rate",
                Some("/min"),
                Some("MDC_PULS_RATE_NON_INV"),
                Some(18474),
                Some(2720),
                Some("DE04.10.118.00 脉搏"),
            ),
            Component::PulseRateOximeter => c(
                "8867-4",
                "Heart rate",
                Some("/min"),
                Some("MDC_PULS_OXIM_PULS_RATE"),
                Some(18458),
                Some(2720),
                Some("DE04.10.118.00 脉搏"),
            ),
            Component::HeartRateEcg => c(
                "8867-4",
                "Heart rate",
                Some("/min"),
                Some("MDC_ECG_HEART_RATE"),
                Some(16770),
                Some(2720),
                None,
            ),
            Component::HeartRate => c(
                "8867-4",
                "Heart rate",
                Some("/min"),
                None,
                None,
                Some(2720),
                None,
            ),
            Component::Spo2 => c(
                "2708-6",
                "Oxygen saturation in Arterial blood",
                Some("%"),
                Some("MDC_PULS_OXIM_SAT_O2"),
                Some(19384),
                Some(544),
                Some("DE04.50.149.00 血氧饱和度(%)"),
            ),
            Component::BodyTemperature => c(
                "8310-5",
                "Body temperature",
                Some("Cel"),
                Some("MDC_TEMP_BODY"),
                Some(19292),
                Some(6048),
                Some("DE04.10.186.00 体温(℃)"),
            ),
            Component::BodyTemperatureAxillary => Code {
                loinc: "8328-7",
                loinc_display: "Axillary temperature",
                ..Component::BodyTemperature.code()
            },
            Component::BodyTemperatureOral => Code {
                loinc: "8331-1",
                loinc_display: "Oral temperature",
                ..Component::BodyTemperature.code()
            },
            Component::BodyTemperatureTympanic => Code {
                loinc: "8333-7",
                loinc_display: "Tympanic membrane temperature",
                ..Component::BodyTemperature.code()
            },
            Component::BodyWeight => c(
                "29463-7",
                "Body weight",
                Some("kg"),
                Some("MDC_MASS_BODY_ACTUAL"),
                Some(57664),
                Some(1731),
                Some("DE04.10.188.00 体重(kg)"),
            ),
            Component::GlucoseCapillaryMmol => c(
                "14743-9",
                "Glucose [Moles/volume] in Capillary blood by Glucometer",
                Some("mmol/L"),
                Some("MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
                Some(29112),
                Some(4722),
                None,
            ),
            Component::GlucoseCapillaryMg => c(
                "41653-7",
                "Glucose [Mass/volume] in Capillary blood by Glucometer",
                Some("mg/dL"),
                Some("MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
                Some(29112),
                Some(2130),
                None,
            ),
            Component::EcgRhythm => c("8884-9", "Heart rate rhythm", None, None, None, None, None),
        }
    }
}

impl Measurement {
    /// The coded components this measurement exports, canonical value first.
    pub fn components(&self) -> Vec<Component> {
        match self {
            Measurement::Bp(m) => {
                let mut v = vec![
                    Component::BpPanel,
                    Component::Systolic,
                    Component::Diastolic,
                ];
                if m.mean.is_some() {
                    v.push(Component::MeanArterial);
                }
                if m.pulse.is_some() {
                    v.push(Component::PulseRateCuff);
                }
                v
            }
            Measurement::Glucose(_) => vec![Component::GlucoseCapillaryMmol],
            Measurement::Spo2(m) => {
                let mut v = vec![Component::Spo2];
                if m.pulse_rate.is_some() {
                    v.push(Component::PulseRateOximeter);
                }
                v
            }
            Measurement::HeartRate(m) => vec![match m.source {
                Some(HrSource::BpCuff) => Component::PulseRateCuff,
                Some(HrSource::Oximeter) => Component::PulseRateOximeter,
                Some(HrSource::EcgPatch) => Component::HeartRateEcg,
                _ => Component::HeartRate,
            }],
            Measurement::Temperature(m) => vec![match m.site {
                None | Some(TemperatureSite::Axillary) => Component::BodyTemperatureAxillary,
                Some(TemperatureSite::Oral) => Component::BodyTemperatureOral,
                Some(TemperatureSite::Tympanic) => Component::BodyTemperatureTympanic,
                Some(TemperatureSite::Rectal | TemperatureSite::Forehead) => {
                    Component::BodyTemperature
                }
            }],
            Measurement::Weight(_) => vec![Component::BodyWeight],
            Measurement::Ecg(_) | Measurement::EcgWaveform(_) => vec![Component::EcgRhythm],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_free_mdc_codes_match_the_table_of_section_4() {
        assert_eq!(Component::BpPanel.code().mdc_code, Some(150_020));
        assert_eq!(Component::Systolic.code().mdc_code, Some(150_021));
        assert_eq!(Component::Diastolic.code().mdc_code, Some(150_022));
        assert_eq!(Component::MeanArterial.code().mdc_code, Some(150_023));
        assert_eq!(Component::PulseRateCuff.code().mdc_code, Some(149_546));
        assert_eq!(Component::PulseRateOximeter.code().mdc_code, Some(149_530));
        assert_eq!(Component::HeartRateEcg.code().mdc_code, Some(147_842));
        assert_eq!(Component::Spo2.code().mdc_code, Some(150_456));
        assert_eq!(Component::BodyTemperature.code().mdc_code, Some(150_364));
        assert_eq!(Component::BodyWeight.code().mdc_code, Some(188_736));
        assert_eq!(
            Component::GlucoseCapillaryMmol.code().mdc_code,
            Some(160_184)
        );
    }

    #[test]
    fn site_specific_temperature_keeps_the_body_temperature_mdc_code() {
        let c = Component::BodyTemperatureTympanic.code();
        assert_eq!(c.loinc, "8333-7");
        assert_eq!(c.mdc_ref, Some("MDC_TEMP_BODY"));
    }
}
