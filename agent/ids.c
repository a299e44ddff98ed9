#include "ids.h"

#include <string.h>

static bool lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool skid_instance(const char *s) {
    size_t n = strlen(s);
    if ((n != 10 && n != 19) || s[0] != 'i' || s[1] != '-')
        return false;
    for (size_t i = 2; i < n; i++)
        if (!lower_hex(s[i]))
            return false;
    return true;
}

bool skid_uuid(const char *s) {
    if (strlen(s) != SKID_UUID_LEN)
        return false;
    for (int i = 0; i < SKID_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!lower_hex(c) && !(c >= 'A' && c <= 'F')) {
            return false;
        }
    }
    return true;
}

bool skid_tenant(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SKID_TENANT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}
