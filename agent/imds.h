/* imds: the instance's identity from the EC2 instance metadata service,
 * IMDSv2 only (a session token by PUT, then reads with it), short timeouts. */
#ifndef SK_IMDS_H
#define SK_IMDS_H

#include <stddef.h>

#include "ids.h"

#define SKIMDS_DEFAULT_URL "http://169.254.169.254"

/* The instance id (written to id) and, best effort, the VPC id (to tenant,
 * "" when the service does not tell). base: the service's URL without a
 * trailing path ("http://169.254.169.254"). -1 with err set on failure. */
int skimds_identity(const char *base, char id[SKID_INSTANCE_MAX + 1], char tenant[SKID_TENANT_MAX + 1], char *err,
                    size_t errlen);

#endif
