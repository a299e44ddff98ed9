/* ids: the shapes of the identifiers the agent reads from outside (the
 * metadata service, the command line, a volume's token). */
#ifndef SK_IDS_H
#define SK_IDS_H

#include <stdbool.h>

#define SKID_INSTANCE_MAX 19 /* "i-" and 17 hex digits */
#define SKID_TENANT_MAX 63
#define SKID_UUID_LEN 36

/* "i-" followed by 8 or 17 lower-case hex digits (the API's rule). */
bool skid_instance(const char *s);
/* 8-4-4-4-12 hex digits, either case. */
bool skid_uuid(const char *s);
/* A tenant (VPC) id as skd names tenants: 1 to 63 of [A-Za-z0-9._-]. */
bool skid_tenant(const char *s);

#endif
