/* fuzz_shops_token.c - a token endpoint's answer, as read by the common
 * OAuth 2.0 client (destination-shops' client-credentials grant and the
 * ERP sources' grants). */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/json.h"

#include "../common/src/oauth2_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_error err = {0};
    yajl_val body = ab_json_parse((const char *)data, size, &err);
    const char *token = NULL, *refresh = NULL;
    double expires = 0;

    if (ab_oauth2_answer_parse(body, &token, &refresh, &expires, &err) == AB_OK) {
        FUZZ_ASSERT(token && token[0] && !strpbrk(token, "\r\n"));
        FUZZ_ASSERT(expires > 0 && expires <= 86400.0);
    } else {
        FUZZ_ASSERT(err.message[0] != '\0');
        FUZZ_ASSERT(token == NULL && expires == 0);
    }
    ab_json_free(body);
    return 0;
}
