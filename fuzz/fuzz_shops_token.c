/* fuzz_shops_token.c - the Shops token endpoint's answer. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/json.h"

#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_error err = {0};
    yajl_val body = ab_json_parse((const char *)data, size, &err);
    const char *token = NULL;
    double expires = 0;

    if (shp_auth_parse(body, &token, &expires, &err) == AB_OK) {
        FUZZ_ASSERT(token && token[0] && !strpbrk(token, "\r\n"));
        FUZZ_ASSERT(expires > 0);
    } else {
        FUZZ_ASSERT(err.message[0] != '\0');
        /* the token itself is never quoted */
        if (token) {
            FUZZ_ASSERT(strstr(err.message, token) == NULL);
        }
    }
    ab_json_free(body);
    return 0;
}
