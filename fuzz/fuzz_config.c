/* fuzz_config.c - config validation against each destination's spec: valid
 * or refused, and no secret value ever in the message. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/config.h"
#include "ab/json.h"

#include "crm360.h"
#include "fuzz.h"
#include "shops.h"

struct secrets {
    const char *list[64];
    size_t n;
};

static void add_secret(void *arg, const char *secret)
{
    struct secrets *s = arg;

    if (s->n < sizeof(s->list) / sizeof(s->list[0])) {
        s->list[s->n++] = secret;
    }
}

/* The spec, parsed once (it is the connector's own, constant). */
static yajl_val spec_schema(const char *spec_json, yajl_val *cache)
{
    if (!*cache) {
        *cache = ab_json_parse(spec_json, strlen(spec_json), NULL);
        FUZZ_ASSERT(*cache != NULL);
    }
    return ab_json_get(*cache, "connectionSpecification");
}

static void check(const uint8_t *data, size_t size, const char *spec_json, yajl_val *cache)
{
    struct ab_error err = {0};
    struct secrets sec = {.n = 0};
    yajl_val schema = spec_schema(spec_json, cache);
    yajl_val config = ab_json_parse((const char *)data, size, &err);
    size_t i;

    if (!config) {
        return;
    }
    /* secrets before validation: defaults filled in are not secrets */
    ab_config_each_secret(config, schema, add_secret, &sec);
    if (ab_config_validate(config, schema, &err) != AB_OK) {
        FUZZ_ASSERT(err.message[0] != '\0');
        for (i = 0; i < sec.n; i++) {
            /* a value that is also schema or message text proves nothing */
            if (strlen(sec.list[i]) < 6 || strstr(spec_json, sec.list[i])) {
                continue;
            }
            if (strstr(err.message, sec.list[i]) || strstr(err.internal, sec.list[i])) {
                fprintf(stderr, "secret '%s' in: %s\n", sec.list[i], err.message);
                abort();
            }
        }
    }
    ab_json_free(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static yajl_val crm;
    static yajl_val shp;

    check(data, size, crm_spec_json, &crm);
    check(data, size, shp_spec_json, &shp);
    return 0;
}
