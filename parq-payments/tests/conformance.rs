//! The payment-gateway conformance suite of parq-core against `StripeGateway`, on a
//! localstripe of its own per case, behind the idempotency proxy (localstripe ignores
//! `Idempotency-Key`; Stripe does not). The driver pays through localstripe's API, webhooks
//! are signed by Stripe's own Python library, and the books are read from localstripe.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::testing::gateway::GatewayHarness;
use parq_core::{DynPaymentGateway, PaymentIntent};
use parq_payments::StripeGateway;
use serde_json::json;
use support::{LocalStripe, Proxy, WEBHOOK_SECRET, delivery, event, stripe_python_signature};

/// `StripeGateway` with localstripe as the provider.
struct StripeHarness {
    gateway: StripeGateway,
    _proxy: Proxy,
    ls: LocalStripe,
}

impl std::fmt::Debug for StripeHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeHarness").field("localstripe", &self.ls.url).finish_non_exhaustive()
    }
}

async fn make() -> Arc<dyn GatewayHarness> {
    let ls = LocalStripe::start().await;
    let proxy = Proxy::start(&ls).await;
    Arc::new(StripeHarness { gateway: proxy.gateway(2), _proxy: proxy, ls })
}

#[async_trait]
impl GatewayHarness for StripeHarness {
    fn gateway(&self) -> &DynPaymentGateway {
        &self.gateway
    }

    async fn pay(&self, intent: &PaymentIntent) {
        let (status, paid) = self.ls.pay(&intent.id, "pm_card_visa").await;
        assert_eq!((status, paid["status"].as_str()), (200, Some("requires_capture")), "{paid}");
    }

    async fn money(&self, intent_id: &str) -> (i64, i64) {
        let pi = self.ls.intent(intent_id).await;
        let captured = pi["charges"]["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["captured"] == true)
            .map(|c| c["amount"].as_i64().unwrap_or(0))
            .sum();
        // localstripe lists refunds only of intents with a charge.
        let charged = pi["charges"]["data"].as_array().is_some_and(|c| !c.is_empty());
        let refunded = if charged {
            self.ls.refunds_of(intent_id).await.iter().map(|r| r["amount"].as_i64().unwrap_or(0)).sum()
        } else {
            0
        };
        (captured, refunded)
    }

    async fn authorised_delivery(
        &self,
        intent: &PaymentIntent,
        event_id: &str,
        at: Timestamp,
    ) -> (Vec<u8>, String) {
        delivery(&self.ls, event_id, "payment_intent.amount_capturable_updated", &intent.id, at.as_second())
            .await
    }

    /// Stripe refuses a refund past what is left (`charge_already_refunded`,
    /// `amount_too_large`); localstripe does not.
    fn provider_limits_refund_totals(&self) -> bool {
        false
    }

    async fn foreign_delivery(&self, event_id: &str, at: Timestamp) -> (Vec<u8>, String) {
        let body = event(
            event_id,
            "customer.created",
            at.as_second(),
            json!({ "id": "cus_1", "object": "customer" }),
        );
        let sig = stripe_python_signature(&body, WEBHOOK_SECRET, at.as_second());
        (body, sig)
    }
}

mod stripe_gateway {
    parq_core::gateway_conformance!(super::make());
}
