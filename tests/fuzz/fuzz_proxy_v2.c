/* libFuzzer target: the PROXY v2 parser on arbitrary bytes, fed whole and
 * in every prefix (as a connection delivers them). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/proxy_v2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    proxy_v2_info_t info;
    int whole = proxy_v2_parse(data, size, &info);
    if (whole > 0 && ((size_t)whole > size || whole > PROXY_V2_MAX || strlen(info.vpce_id) >= sizeof info.vpce_id))
        abort();
    /* A prefix of a valid header asks for more; no prefix claims a header
     * other than the whole's. */
    for (size_t n = 0; n < size && n < 64; n++) {
        int r = proxy_v2_parse(data, n, &info);
        if ((r > 0 && r != whole) || (whole > 0 && n < (size_t)whole && r != 0))
            abort();
    }
    return 0;
}
