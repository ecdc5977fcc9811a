//! The shop's client: what a customer's browser does, through the gateway. Each call says which
//! side answered (`x-fig-side`, when the gateway exposes it) and whether it succeeded.

use crate::demo::order_view::OrderView;
use serde_json::{Value, json};
use std::time::Duration;

/// Response header naming the side that answered.
pub const SIDE_HEADER: &str = "x-fig-side";
/// Per-request timeout of the load generator.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One answered (or failed) client request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `POST /orders`, `GET /orders/{id}`, ...
    pub what: &'static str,
    /// HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    /// `x-fig-side` of the answer.
    pub side: Option<String>,
    /// The body as JSON (or the transport error, as a string).
    pub body: Value,
}

impl Outcome {
    /// Whether the client got what it asked for.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A client of the shop behind `base` (the gateway's public URL).
#[derive(Clone)]
pub struct Shop {
    base: String,
    http: reqwest::Client,
    sticky_header: String,
}

impl Shop {
    /// A client of `base`, sending the user's key in `sticky_header`.
    pub fn new(base: &str, sticky_header: &str) -> Shop {
        Shop {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            sticky_header: sticky_header.to_string(),
        }
    }

    async fn call(&self, what: &'static str, req: reqwest::RequestBuilder) -> Outcome {
        match req.send().await {
            Ok(resp) => {
                let status = Some(resp.status().as_u16());
                let side = resp
                    .headers()
                    .get(SIDE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.json().await.unwrap_or(Value::Null);
                Outcome {
                    what,
                    status,
                    side,
                    body,
                }
            }
            Err(e) => Outcome {
                what,
                status: None,
                side: None,
                body: Value::String(e.to_string()),
            },
        }
    }

    fn post(&self, path: &str, user: &str, body: Value) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base);
        self.http
            .post(url)
            .header(&self.sticky_header, user)
            .json(&body)
    }

    /// `POST /customers`.
    pub async fn register_customer(&self, user: &str) -> Outcome {
        let body = json!({
            "name": format!("Demo customer {user}"), "email": format!("{user}@example.invalid"),
            "address_line1": "1 Fig Street", "city": "Bristol", "post_code": "BS1",
            "country": "GB",
        });
        self.call("POST /customers", self.post("/customers", user, body))
            .await
    }

    /// `POST /orders` with `lines` as `(sku, quantity, unit price)`.
    pub async fn place_order(
        &self,
        user: &str,
        customer: &str,
        lines: &[(&str, i32, &str)],
    ) -> Outcome {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price": p}))
            .collect();
        let body = json!({"customer_id": customer, "currency": "EUR", "lines": lines});
        self.call("POST /orders", self.post("/orders", user, body))
            .await
    }

    /// `POST /inventory/reservations`.
    pub async fn reserve(&self, user: &str, order: &str) -> Outcome {
        let body = json!({"order_id": order});
        self.call(
            "POST /inventory/reservations",
            self.post("/inventory/reservations", user, body),
        )
        .await
    }

    /// `POST /orders/{id}/payment/authorize` with `card_token`.
    pub async fn authorize(&self, user: &str, order: &str, card_token: &str) -> Outcome {
        let path = format!("/orders/{order}/payment/authorize");
        let body = json!({"card_token": card_token});
        self.call(
            "POST /orders/{id}/payment/authorize",
            self.post(&path, user, body),
        )
        .await
    }

    /// `POST /orders/{id}/payment/capture`.
    pub async fn capture(&self, user: &str, order: &str) -> Outcome {
        let path = format!("/orders/{order}/payment/capture");
        self.call(
            "POST /orders/{id}/payment/capture",
            self.post(&path, user, json!({})),
        )
        .await
    }

    /// `POST /orders/{id}/cancel`.
    pub async fn cancel(&self, user: &str, order: &str) -> Outcome {
        let path = format!("/orders/{order}/cancel");
        let body = json!({"reason": "changed my mind"});
        self.call("POST /orders/{id}/cancel", self.post(&path, user, body))
            .await
    }

    /// `GET /orders/{id}`.
    pub async fn order(&self, user: &str, order: &str) -> Outcome {
        let url = format!("{}/orders/{order}", self.base);
        let req = self.http.get(url).header(&self.sticky_header, user);
        self.call("GET /orders/{id}", req).await
    }
}

/// An order as JSON, if the outcome carries one.
pub fn order_view(outcome: &Outcome) -> Option<OrderView> {
    serde_json::from_value(outcome.body.clone()).ok()
}

/// The fields both sides know that differ between the legacy and the new view of one order.
pub fn differences(legacy: &OrderView, new: &OrderView) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |field: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug, same: bool| {
        if !same {
            out.push(format!("{field}: legacy {a:?}, new {b:?}"));
        }
    };
    check(
        "status",
        &legacy.status,
        &new.status,
        legacy.status == new.status,
    );
    check(
        "customer_id",
        &legacy.customer_id,
        &new.customer_id,
        legacy.customer_id == new.customer_id,
    );
    check(
        "total",
        &legacy.total,
        &new.total,
        legacy.total == new.total,
    );
    check(
        "payment",
        &legacy.payment,
        &new.payment,
        legacy.payment == new.payment,
    );
    check(
        "stock",
        &legacy.stock,
        &new.stock,
        legacy.stock == new.stock,
    );
    check(
        "exception_reason",
        &legacy.exception_reason,
        &new.exception_reason,
        legacy.exception_reason == new.exception_reason,
    );
    out
}
