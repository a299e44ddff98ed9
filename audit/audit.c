#include "audit.h"

#include "../common/log.h"

int audit_record(const audit_event_t *ev) {
    log_info("audit: tenant=%s caller=%s/%s ip=%s call=%s volume=%s result=%s%s%s", ev->tenant_id,
             ev->caller_type, ev->caller_id, ev->caller_ip, ev->call_name, ev->volume_uuid ? ev->volume_uuid : "-",
             ev->result, ev->failure_reason ? " reason=" : "", ev->failure_reason ? ev->failure_reason : "");
    return 0;
}
