/* fuzz_catalog.c - the configured catalog: parsed or refused, never a crash. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/catalog.h"
#include "ab/json.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_error err = {0};
    struct ab_catalog cat;
    yajl_val root = ab_json_parse((const char *)data, size, &err);
    size_t i;

    if (!root) {
        return 0;
    }
    memset(&cat, 0, sizeof(cat));
    if (ab_catalog_parse(&cat, root, &err) == AB_OK) {
        for (i = 0; i < cat.n; i++) {
            const struct ab_stream *s = &cat.streams[i];

            FUZZ_ASSERT(s->name && s->name[0]);
            FUZZ_ASSERT(ab_catalog_find(&cat, s->name, s->ns) >= 0);
        }
    } else {
        FUZZ_ASSERT(err.message[0] != '\0');
    }
    ab_catalog_release(&cat);
    ab_json_free(root);
    return 0;
}
