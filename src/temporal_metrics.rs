//! The Temporal SDK's own worker metrics (task slots, pollers, schedule-to-start and execution
//! latencies, sticky cache, ...) in the process's one Prometheus registry, so a worker's
//! `/metrics` serves them beside ours under the same token: the SDK hands its instruments to
//! [`SdkMeter`], which records through the `metrics` facade.
//!
//! Names keep the SDK's `temporal_` prefix and follow Prometheus's conventions: counters end
//! in `_total`, durations are in seconds and end in `_seconds`. Labels are the SDK's own
//! (namespace, task queue, workflow and activity type, poller and worker type); any other
//! label is dropped, so none can ever name a job or a user.

use metrics::Label;
use std::{error::Error, sync::Arc, time::Duration};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, CounterBase, Gauge, GaugeBase, GaugeF64, GaugeF64Base, Histogram,
    HistogramBase, HistogramDuration, HistogramDurationBase, HistogramF64, HistogramF64Base,
    MetricAttributable, MetricAttributes, MetricParameters, NewAttributes, OrderedPromLabelSet,
    UpDownCounter, UpDownCounterBase,
};

/// The SDK labels passed on. Each has a small, fixed set of values (task queues: the shared
/// ones and one per worker).
const LABELS: [&str; 9] = [
    "namespace",
    "task_queue",
    "workflow_type",
    "activity_type",
    "poller_type",
    "worker_type",
    "eager",
    "failure_reason",
    "service_name",
];

/// A [`CoreMeter`] recording into the `metrics` facade.
#[derive(Debug, Clone, Copy, Default)]
pub struct SdkMeter;

impl CoreMeter for SdkMeter {
    fn new_attributes(&self, attribs: NewAttributes) -> MetricAttributes {
        self.extend_attributes(MetricAttributes::Empty, attribs)
    }

    fn extend_attributes(
        &self,
        existing: MetricAttributes,
        attribs: NewAttributes,
    ) -> MetricAttributes {
        let mut labels = match existing {
            MetricAttributes::Prometheus { labels } => (*labels).clone(),
            _ => OrderedPromLabelSet::new(),
        };
        for pair in attribs.attributes {
            if LABELS.contains(&pair.key.as_str()) {
                labels.add_kv(pair);
            }
        }
        MetricAttributes::Prometheus {
            labels: Arc::new(labels),
        }
    }

    fn counter(&self, params: MetricParameters) -> Counter {
        Counter::new(Instrument::named(&params, "_total"))
    }

    fn histogram(&self, params: MetricParameters) -> Histogram {
        Histogram::new(Instrument::named(&params, ""))
    }

    fn histogram_f64(&self, params: MetricParameters) -> HistogramF64 {
        HistogramF64::new(Instrument::named(&params, ""))
    }

    fn histogram_duration(&self, params: MetricParameters) -> HistogramDuration {
        HistogramDuration::new(Instrument::named(&params, "_seconds"))
    }

    fn gauge(&self, params: MetricParameters) -> Gauge {
        Gauge::new(Instrument::named(&params, ""))
    }

    fn gauge_f64(&self, params: MetricParameters) -> GaugeF64 {
        GaugeF64::new(Instrument::named(&params, ""))
    }

    fn up_down_counter(&self, params: MetricParameters) -> UpDownCounter {
        UpDownCounter::new(Instrument::named(&params, ""))
    }
}

/// One SDK instrument: its Prometheus name; bound to labels when the SDK records.
struct Instrument {
    name: String,
}

impl Instrument {
    fn named(params: &MetricParameters, suffix: &str) -> Arc<Self> {
        let name = params.name.trim_end_matches(suffix);
        Arc::new(Self {
            name: format!("{name}{suffix}"),
        })
    }
}

fn labels(attributes: &MetricAttributes) -> Vec<Label> {
    match attributes {
        MetricAttributes::Prometheus { labels } => labels
            .as_prom_labels()
            .into_iter()
            .map(|(key, value)| Label::new(key.to_owned(), value))
            .collect(),
        _ => Vec::new(),
    }
}

type Bound<T> = Result<Box<T>, Box<dyn Error>>;

struct FacadeCounter(metrics::Counter);
struct FacadeHistogram(metrics::Histogram);
struct FacadeGauge(metrics::Gauge);

impl MetricAttributable<Box<dyn CounterBase>> for Instrument {
    fn with_attributes(&self, attributes: &MetricAttributes) -> Bound<dyn CounterBase> {
        let counter = metrics::counter!(self.name.clone(), labels(attributes));
        Ok(Box::new(FacadeCounter(counter)))
    }
}

impl CounterBase for FacadeCounter {
    fn adds(&self, value: u64) {
        self.0.increment(value);
    }
}

macro_rules! histogram_of {
    ($base:ident, $value:ty, $to_f64:expr) => {
        impl MetricAttributable<Box<dyn $base>> for Instrument {
            fn with_attributes(&self, attributes: &MetricAttributes) -> Bound<dyn $base> {
                let histogram = metrics::histogram!(self.name.clone(), labels(attributes));
                Ok(Box::new(FacadeHistogram(histogram)))
            }
        }

        impl $base for FacadeHistogram {
            fn records(&self, value: $value) {
                let to_f64: fn($value) -> f64 = $to_f64;
                self.0.record(to_f64(value));
            }
        }
    };
}

histogram_of!(HistogramBase, u64, |value| value as f64);
histogram_of!(HistogramF64Base, f64, |value| value);
histogram_of!(HistogramDurationBase, Duration, |value| value.as_secs_f64());

macro_rules! gauge_of {
    ($base:ident, $method:ident, $value:ty, $apply:expr) => {
        impl MetricAttributable<Box<dyn $base>> for Instrument {
            fn with_attributes(&self, attributes: &MetricAttributes) -> Bound<dyn $base> {
                let gauge = metrics::gauge!(self.name.clone(), labels(attributes));
                Ok(Box::new(FacadeGauge(gauge)))
            }
        }

        impl $base for FacadeGauge {
            fn $method(&self, value: $value) {
                let apply: fn(&metrics::Gauge, $value) = $apply;
                apply(&self.0, value);
            }
        }
    };
}

gauge_of!(GaugeBase, records, u64, |gauge, value| gauge
    .set(value as f64));
gauge_of!(GaugeF64Base, records, f64, |gauge, value| gauge.set(value));
gauge_of!(UpDownCounterBase, adds, i64, |gauge, value| gauge
    .increment(value as f64));

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::telemetry::metrics::MetricKeyValue;

    #[test]
    fn only_the_sdk_labels_are_kept_and_names_follow_prometheus() {
        let meter = SdkMeter;
        let base = meter.new_attributes(NewAttributes::from([
            MetricKeyValue::new("namespace", "default"),
            MetricKeyValue::new("workflow_id", "0190c3e2-job"),
        ]));
        let extended = meter.extend_attributes(
            base,
            NewAttributes::from([MetricKeyValue::new("task_queue", "audiomill")]),
        );
        let mut kept: Vec<String> = labels(&extended)
            .iter()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        kept.sort();
        assert_eq!(kept, ["namespace=default", "task_queue=audiomill"]);

        let params = |name: &'static str| MetricParameters::from(name);
        let counter = Instrument::named(&params("temporal_workflow_completed"), "_total");
        assert_eq!(counter.name, "temporal_workflow_completed_total");
        let duration = Instrument::named(&params("temporal_activity_latency"), "_seconds");
        assert_eq!(duration.name, "temporal_activity_latency_seconds");
    }
}
