//! The OpenAPI 3.1 document of the REST API (`GET /api/openapi.json`),
//! generated from the handlers of `api`, `supply` and `partners`: the one
//! module that knows them all, so none of them depends on another.

use utoipa::OpenApi;

/// The document as JSON.
pub async fn json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "FactoryChain API", version = "1", description = "Tenancy, devices, users, API keys, telemetry reads, and supplier settlement (ledger, designs, orders, payments). Authenticate with `Authorization: Bearer <API key>`."),
    paths(crate::supply::org, crate::supply::set_key, crate::supply::set_bank, crate::supply::org_key, crate::supply::networks, crate::supply::ledger_key, crate::supply::checkpoint, crate::supply::entries, crate::supply::entry, crate::supply::inclusion, crate::supply::consistency, crate::supply::designs, crate::supply::publish_design, crate::supply::download_design, crate::supply::change_access, crate::supply::orders, crate::supply::issue_order, crate::supply::order, crate::supply::accept_order, crate::supply::send_shipment, crate::supply::receive, crate::supply::inspect, crate::supply::accept_delivery, crate::supply::reject_delivery, crate::supply::payments, crate::supply::export_payments, crate::supply::exports, crate::supply::blocked_payments, crate::supply::export_file, crate::supply::reissue_export, crate::supply::confirm_payment, crate::partners::list, crate::partners::request, crate::partners::accept, crate::partners::end, crate::api::me, crate::api::usage, crate::api::list_devices, crate::api::create_device, crate::api::revoke_device, crate::api::rotate_device, crate::api::list_users, crate::api::set_role, crate::api::invite, crate::api::list_invitations, crate::api::withdraw_invitation, crate::api::list_keys, crate::api::create_key, crate::api::revoke_key, crate::api::list_series, crate::api::latest, crate::api::series_range, crate::api::export_csv, crate::alarms::list_alarms, crate::alarms::get_alarm, crate::alarms::acknowledge_alarm, crate::alarms::clear_alarm, crate::alarms::comment_alarm, crate::alarms::assign_alarm, crate::alarms::list_alarm_rules, crate::alarms::put_alarm_rule, crate::alarms::delete_alarm_rule, crate::alarms::backtest_alarm_rule, crate::alarms::list_webhooks, crate::alarms::put_webhook, crate::alarms::delete_webhook, crate::alarms::list_webhook_deliveries, crate::alarms::get_my_subscription, crate::alarms::put_my_subscription, crate::alarms::delete_my_subscription, crate::alarms::list_alarm_subscriptions, crate::oee::get_oee, crate::oee::get_oee_setup, crate::oee::put_oee_setup, crate::oee::post_downtime_reason),
    components(schemas(crate::supply::OrgOut, crate::supply::KeyIn, crate::supply::KeyOut, crate::supply::RecipientsIn, crate::supply::ShipmentIn, crate::supply::QuantityIn, crate::supply::InspectionIn, crate::supply::RejectIn, crate::supply::ConfirmIn, fc_settlement_api::NetworkView, fc_settlement_api::DesignView, fc_settlement_api::OrderInput, fc_settlement_api::OrderView, fc_settlement_api::ShipmentView, fc_settlement_api::PaymentView, fc_settlement_api::ExportView, fc_settlement_api::BlockedView, fc_settlement_api::EntryView, fc_settlement_api::TelemetryInspection, crate::partners::PartnersOut, crate::partners::PartnerOut, crate::partners::NewPartner, crate::problem::Problem, crate::api::Me, crate::usage::Usage, crate::api::DeviceOut, crate::api::NewDevice, crate::api::CreatedDevice, crate::api::UserOut, crate::api::RoleChange, crate::api::NewInvitation, crate::api::CreatedInvitation, crate::api::InvitationOut, crate::api::KeyOut, crate::api::NewKey, crate::api::CreatedKey, crate::api::SeriesOut, crate::api::LatestOut, crate::api::RangeOut, crate::api::PointOut, crate::api::BucketOut, crate::alarms::ActionIn, crate::alarms::CommentIn, crate::alarms::AssigneeIn, fc_monitor_api::AlarmView, fc_monitor_api::NoteView, fc_monitor_api::StepView, fc_monitor_api::RuleView, fc_monitor_api::WebhookView, fc_monitor_api::DeliveryView, fc_monitor_api::WebhookInput, fc_monitor_api::EmailSubscriptionView, fc_monitor_api::BacktestView, fc_monitor_api::BacktestAlarmView, crate::alarms::BacktestIn, crate::oee::ReasonIn, fc_monitor_api::OeeReportView, fc_monitor_api::OeeRow, fc_monitor_api::OeeTotal, fc_monitor_api::OeeFigures, fc_monitor_api::StateSpanView, fc_monitor_api::DowntimeView, fc_monitor_api::ParetoView, crate::alarms::SubscriptionIn)),
    modifiers(&BearerAuth, &DescribeResponses),
    security(("bearer" = []))
)]
/// The OpenAPI document.
pub struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// Completes what every operation shares, so that no route can leave the
/// document invalid or a generated client surprised (the class, not each line):
/// - OpenAPI 3.1 requires a `description` on every response: a handler's
///   annotation gives one where it has more to say, the others say what their
///   status means on this API;
/// - every route needs a key or session, so every operation documents 401;
///   one with parameters or a body documents 400 too (both problem+json);
/// - tags are the API's areas, not Rust module paths.
struct DescribeResponses;
impl utoipa::Modify for DescribeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |status: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(status_meaning(status))
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.trim().is_empty()
                    {
                        r.description = status_meaning(status).to_string();
                    }
                }
                if path.starts_with("/api/v1/") {
                    responses.entry("401".into()).or_insert_with(|| problem("401"));
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some() {
                    responses.entry("400".into()).or_insert_with(|| problem("400"));
                }
                // The account and telemetry routes carry no tag, as before they moved here.
                if op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "crate::api")) {
                    op.tags = None;
                }
                if let Some(tags) = &mut op.tags {
                    for tag in tags.iter_mut() {
                        *tag = match tag.as_str() {
                            "crate::supply" => "settlement".into(),
                            "crate::partners" => "partners".into(),
                            "crate::alarms" => "alarms".into(),
                            "crate::oee" => "oee".into(),
                            other => other.into(),
                        };
                    }
                }
            }
        }
    }
}

/// What a status means on this API, for the OpenAPI document.
pub fn status_meaning(status: &str) -> &'static str {
    match status {
        "200" => "Success.",
        "201" => "Created.",
        "204" => "Done; no content.",
        "400" => "Malformed request or a value out of range; `detail` names the field.",
        "401" => "No valid API key or session.",
        "403" => "The caller's role does not allow this.",
        "404" => "No such object in the caller's tenant.",
        "409" => "Conflicts with the object's current state; `detail` says why.",
        "413" => "The request body is larger than allowed.",
        "415" => "Unsupported content type.",
        "429" => "A plan limit or a throttle was reached; `detail` says which and when to retry.",
        "503" => "A service this request needs is unavailable; retry later.",
        _ => "See `detail` (problem+json).",
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn no_rust_module_path_leaks_into_the_document() {
        let doc = serde_json::to_string(&super::ApiDoc::openapi()).expect("serialises");
        assert!(!doc.contains("crate::"), "a tag or name is a Rust path");
        assert!(doc.contains("\"/api/v1/me\"") && doc.contains("\"/api/v1/networks\""), "every handler module's routes are in it");
    }

    #[test]
    fn every_operation_id_is_unique() {
        // Handlers of different modules share names (`list`); a generated client needs one id each.
        let doc = serde_json::to_value(super::ApiDoc::openapi()).expect("serialises");
        let mut ids: Vec<&str> = Vec::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("an item").values() {
                if let Some(id) = op["operationId"].as_str() {
                    assert!(!ids.contains(&id), "operationId {id} twice");
                    ids.push(id);
                }
            }
        }
        assert!(ids.len() > 50, "{} operations", ids.len());
    }
}
