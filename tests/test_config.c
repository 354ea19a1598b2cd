/* test_config.c - config validation against the spec subset, defaults, secrets. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "ab/buf.h"
#include "ab/config.h"
#include "ab/json.h"

#include "ab_golden.h"
#include "ab_test.h"

#define DATA AB_TEST_DATA_DIR "/config/"

/* Stands for "something not NULL" to check that failures reset *out. */
static struct yajl_val_s not_null;

static char *to_json(yajl_val v)
{
    struct ab_error err;
    struct ab_buf b;

    ab_error_init(&err);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_json_write(&b, v, &err), AB_OK);
    return ab_buf_detach(&b, NULL);
}

/* The schema of one property "a". */
#define PROP(s) "{'type':'object','properties':{'a':" s "}}"

struct vcase {
    const char *schema;
    const char *config;
    const char *message; /* NULL: valid */
    const char *after;   /* config after validation (' for "), NULL: unchanged */
};

static const struct vcase cases[] = {
    /* type */
    {PROP("{'type':'string'}"), "{'a':'x'}", NULL, NULL},
    {PROP("{'type':'string'}"), "{'a':1}", "a: must be a string, not an integer", NULL},
    {PROP("{'type':'integer'}"), "{'a':-5}", NULL, NULL},
    {PROP("{'type':'integer'}"), "{'a':5.0}", "a: must be an integer, not a number", NULL},
    {PROP("{'type':'integer'}"), "{'a':1e2}", "a: must be an integer, not a number", NULL},
    {PROP("{'type':'integer'}"), "{'a':'5'}", "a: must be an integer, not a string", NULL},
    {PROP("{'type':'integer'}"), "{'a':123456789012345678901}",
     "a: must be an integer, not a number", NULL},
    {PROP("{'type':'number'}"), "{'a':5.5}", NULL, NULL},
    {PROP("{'type':'number'}"), "{'a':7}", NULL, NULL},
    {PROP("{'type':'number'}"), "{'a':true}", "a: must be a number, not a boolean", NULL},
    {PROP("{'type':'boolean'}"), "{'a':false}", NULL, NULL},
    {PROP("{'type':'boolean'}"), "{'a':null}", "a: must be a boolean, not null", NULL},
    {PROP("{'type':'object'}"), "{'a':[]}", "a: must be an object, not an array", NULL},
    {PROP("{'type':'array'}"), "{'a':{}}", "a: must be an array, not an object", NULL},
    {PROP("{'type':'null'}"), "{'a':0}", "a: must be null, not an integer", NULL},
    {PROP("{'type':['string','null']}"), "{'a':null}", NULL, NULL},
    {PROP("{'type':['string','null']}"), "{'a':'s'}", NULL, NULL},
    {PROP("{'type':['string','null']}"), "{'a':1}", "a: must be a string or null, not an integer",
     NULL},
    {PROP("{'type':['integer','boolean']}"), "{'a':'x'}",
     "a: must be an integer or a boolean, not a string", NULL},
    {"{'type':'object'}", "[]", "config: must be an object, not an array", NULL},
    /* required, additionalProperties */
    {"{'type':'object','required':['a','b','c'],'properties':{'a':{}}}", "{'b':1}",
     "a: is required; c: is required", NULL},
    {"{'type':'object','additionalProperties':false,'properties':{'a':{}}}", "{'a':1,'zz':2}",
     "zz: is not allowed (unknown field)", NULL},
    {"{'type':'object','additionalProperties':true,'properties':{'a':{}}}", "{'zz':2}", NULL, NULL},
    {"{'type':'object','additionalProperties':{'type':'string'}}", "{'zz':2}", NULL, NULL},
    /* enum, const */
    {PROP("{'enum':['dead_letter','fail']}"), "{'a':'fail'}", NULL, NULL},
    {PROP("{'enum':['dead_letter','fail']}"), "{'a':'merge'}",
     "a: must be one of dead_letter, fail (got 'merge')", NULL},
    {PROP("{'enum':[1,2,null,{'x':[true]}]}"), "{'a':3}",
     "a: must be one of 1, 2, null, {\"x\":[true]} (got 3)", NULL},
    {PROP("{'enum':[1,2,null,{'x':[true]}]}"), "{'a':{'x':[true]}}", NULL, NULL},
    {PROP("{'enum':[1,2]}"), "{'a':2.0}", NULL, NULL},
    {PROP("{'const':'S3'}"), "{'a':'S3'}", NULL, NULL},
    {PROP("{'const':'S3'}"), "{'a':'None'}", "a: must be S3 (got 'None')", NULL},
    {PROP("{'const':7}"), "{'a':[7]}", "a: must be 7", NULL},
    /* numbers */
    {PROP("{'minimum':1}"), "{'a':0}", "a: must be >= 1 (got 0)", NULL},
    {PROP("{'minimum':1}"), "{'a':1}", NULL, NULL},
    {PROP("{'maximum':1000}"), "{'a':1001}", "a: must be <= 1000 (got 1001)", NULL},
    {PROP("{'maximum':1000}"), "{'a':1000}", NULL, NULL},
    {PROP("{'exclusiveMinimum':0}"), "{'a':0}", "a: must be > 0 (got 0)", NULL},
    {PROP("{'exclusiveMinimum':0}"), "{'a':0.001}", NULL, NULL},
    {PROP("{'exclusiveMaximum':10}"), "{'a':10}", "a: must be < 10 (got 10)", NULL},
    {PROP("{'minimum':5,'exclusiveMinimum':true}"), "{'a':5}", "a: must be > 5 (got 5)", NULL},
    {PROP("{'maximum':5,'exclusiveMaximum':true}"), "{'a':4.5}", NULL, NULL},
    {PROP("{'maximum':1.5}"), "{'a':1.6}", "a: must be <= 1.5 (got 1.6)", NULL},
    {PROP("{'minimum':0.5}"), "{'a':1}", NULL, NULL},
    {PROP("{'minimum':9007199254740993}"), "{'a':9007199254740992}",
     "a: must be >= 9007199254740993 (got 9007199254740992)", NULL},
    {PROP("{'minimum':1}"), "{'a':'0'}", NULL, NULL}, /* not a number: no check */
    /* strings */
    {PROP("{'minLength':3}"), "{'a':'ab'}", "a: must be at least 3 characters long", NULL},
    {PROP("{'minLength':1}"), "{'a':''}", "a: must not be empty", NULL},
    {PROP("{'maxLength':5}"), "{'a':'h\\u00e9llo'}", NULL, NULL},
    {PROP("{'maxLength':5}"), "{'a':'h\\u00e9llo!'}", "a: must be at most 5 characters long", NULL},
    {PROP("{'minLength':2}"), "{'a':'\\ud83d\\ude00'}", "a: must be at least 2 characters long",
     NULL},
    {PROP("{'pattern':'^https?://'}"), "{'a':'https://x'}", NULL, NULL},
    {PROP("{'pattern':'^https?://'}"), "{'a':'ftp://x'}",
     "a: must match the pattern '^https?://' (got 'ftp://x')", NULL},
    {PROP("{'pattern':'^[0-9]+$'}"), "{'a':'12345678901234567890123456789012345678901x'}",
     "a: must match the pattern '^[0-9]+$'", NULL},
    {PROP("{'pattern':'^[0-9]+$'}"), "{'a':'it\\u0027s'}", "a: must match the pattern '^[0-9]+$'",
     NULL},
    {PROP("{'pattern':'('}"), "{'a':'x'}",
     "a: the spec's pattern '(' is not a valid POSIX regular expression", NULL},
    /* arrays and nesting */
    {PROP("{'minItems':2}"), "{'a':[1]}", "a: must have at least 2 items", NULL},
    {PROP("{'minItems':1}"), "{'a':[]}", "a: must not be empty", NULL},
    {PROP("{'maxItems':2}"), "{'a':[1,2,3]}", "a: must have at most 2 items", NULL},
    {PROP("{'type':'array','items':{'type':'object','required':['x'],"
          "'properties':{'x':{'type':'integer'}}}}"),
     "{'a':[{'x':1},{'x':'2'},{}]}",
     "a[1].x: must be an integer, not a string; a[2].x: is required", NULL},
    {"{'properties':{'o':{'properties':{'p':{'properties':{'q':{'maximum':3}}}}}}}",
     "{'o':{'p':{'q':4}}}", "o.p.q: must be <= 3 (got 4)", NULL},
    {PROP("{'items':{'items':{'type':'string'}}}"), "{'a':[['x'],['y',1]]}",
     "a[1][1]: must be a string, not an integer", NULL},
    /* defaults */
    {"{'type':'object','required':['n'],'properties':{'n':{'type':'integer','default':500},"
     "'s':{'default':'x'},'o':{'type':'object','default':{'k':[1,2.50]}},"
     "'present':{'default':1}}}",
     "{'present':null}", NULL, "{'present':null,'n':500,'s':'x','o':{'k':[1,2.50]}}"},
    {"{'properties':{'o':{'type':'object','default':{},'properties':{'d':{'default':true}}}}}",
     "{}", NULL, "{'o':{'d':true}}"},
    {PROP("{'items':{'properties':{'up':{'default':true}}}}"), "{'a':[{},{'up':false},{}]}", NULL,
     "{'a':[{'up':true},{'up':false},{'up':true}]}"},
    {PROP("{'type':'object','properties':{'b':{'default':1}}}"), "{}", NULL, "{}"},
    /* oneOf */
    {PROP("{'oneOf':[{'type':'string'},{'type':'integer'}]}"), "{'a':3}", NULL, NULL},
    {PROP("{'oneOf':[{'type':'string'},{'type':'integer','title':'Count'}]}"), "{'a':true}",
     "a: matches none of the 2 options (1: must be a string, not a boolean; 2 'Count': must be "
     "an integer, not a boolean)",
     NULL},
    {PROP("{'oneOf':[{'properties':{'x':{'default':1}}},{'properties':{'y':{'default':2}}}]}"),
     "{'a':{}}", NULL, "{'a':{'x':1}}"},
    {PROP("{'oneOf':[{'required':['m'],'properties':{'m':{'const':'a'},'p':{'default':1}}},"
          "{'required':['m','k'],'properties':{'m':{'const':'b'},'q':{'default':2}}}]}"),
     "{'a':{'m':'b','k':0}}", NULL, "{'a':{'m':'b','k':0,'q':2}}"},
    {PROP("{'oneOf':[{'required':['m'],'properties':{'m':{'const':'a'}}},"
          "{'required':['m','k'],'properties':{'m':{'const':'b'},'k':{'minimum':1},"
          "'j':{'type':'string'}}}]}"),
     "{'a':{'m':'b','k':0,'j':1}}",
     "a.k: must be >= 1 (got 0); a.j: must be a string, not an integer", NULL},
    {PROP("{'oneOf':[{'required':['m','x'],'properties':{'m':{'const':'a'}}},"
          "{'required':['m','k'],'properties':{'m':{'const':'b'}}}]}"),
     "{'a':{}}", "a: matches none of the 2 options (1: m: is required; 2: m: is required)", NULL},
    /* a default fills a required property, also inside a oneOf trial */
    {PROP("{'oneOf':[{'required':['r'],'properties':{'r':{'default':'d'}}}]}"), "{'a':{}}", NULL,
     "{'a':{'r':'d'}}"},
    /* secrets are never quoted */
    {PROP("{'type':'string','airbyte_secret':true,'enum':['aaa'],'pattern':'^x',"
          "'minLength':50,'maxLength':2}"),
     "{'a':'hunter2'}",
     "a: must be one of aaa; a: must be at least 50 characters long; a: must be at most 2 "
     "characters long; a: must match the pattern '^x'",
     NULL},
    {PROP("{'type':'integer','airbyte_secret':true,'maximum':9}"), "{'a':1234}", "a: must be <= 9",
     NULL},
    {PROP("{'airbyte_secret':true,'properties':{'pin':{'const':'0000'}}}"),
     "{'a':{'pin':'hunter2'}}", "a.pin: must be 0000", NULL},
    {PROP("{'oneOf':[{'properties':{'m':{'const':'x'}}},{'properties':{'m':{'const':'y'}}}],"
          "'properties':{'s':{'airbyte_secret':true,'pattern':'^z'}}}"),
     "{'a':{'m':'q','s':'hunter2'}}",
     "a.s: must match the pattern '^z'; a: matches none of the 2 options (1: m: must be x (got "
     "'q'); 2: m: must be y (got 'q'))",
     NULL},
    /* a secret's text quoted inside another field's value is replaced */
    {"{'type':'object','properties':{'u':{'type':'string','pattern':'^https://'},"
     "'k':{'type':'string','airbyte_secret':true}}}",
     "{'u':'httpverysecret://x','k':'verysecret'}",
     "u: must match the pattern '^https://' (got 'http****://x')", NULL},
};

static void test_validate_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct vcase *c = &cases[i];
        yajl_val schema = ab_test_sq_parse(c->schema);
        yajl_val config = ab_test_sq_parse(c->config);
        struct ab_error err;
        enum ab_status rc;
        char *text;

        ab_error_init(&err);
        rc = ab_config_validate(config, schema, &err);
        if (c->message) {
            char want[AB_ERROR_MSG_MAX];

            (void)snprintf(want, sizeof(want), "config is invalid: %s", c->message);
            if (rc != AB_ERR_CONFIG || strcmp(err.message, want) != 0) {
                fail_msg("case %zu (%s): got %d \"%s\", want \"%s\"", i, c->config, (int)rc,
                         err.message, want);
            }
            assert_null(strstr(err.message, "hunter2"));
        } else if (rc != AB_OK) {
            fail_msg("case %zu (%s): unexpected \"%s\"", i, c->config, err.message);
        }
        text = to_json(config);
        if (c->after) {
            yajl_val after = ab_test_sq_parse(c->after);
            char *want = to_json(after);

            if (strcmp(text, want) != 0) {
                fail_msg("case %zu: config after is %s, want %s", i, text, want);
            }
            free(want);
            yajl_tree_free(after);
        }
        free(text);
        yajl_tree_free(config);
        yajl_tree_free(schema);
    }
}

static yajl_val load_plain(const char *path)
{
    struct ab_error err;
    yajl_val v = NULL;

    ab_error_init(&err);
    if (ab_config_load(path, NULL, &v, &err) != AB_OK) {
        fail_msg("cannot load %s: %s", path, err.message);
    }
    return v;
}

static void test_load_valid_fills_defaults(void **state)
{
    yajl_val spec = load_plain(DATA "spec.json");
    yajl_val config = NULL;
    struct ab_error err;
    char *text;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_config_load(DATA "valid.json", spec, &config, &err), AB_OK);
    text = to_json(config);
    assert_string_equal(
        text, "{\"api_url\":\"https://api.example.com\",\"api_key\":\"sk-live-abcdefgh\","
              "\"stream_mappings\":[{\"stream\":\"clientes\",\"namespace\":\"erp\","
              "\"object\":\"customers\",\"fields\":{\"external_id\":\"id\"},\"upsert\":true},"
              "{\"stream\":\"pedidos\",\"object\":\"orders\",\"upsert\":false}],"
              "\"auth\":{\"mode\":\"oauth\",\"client_id\":\"cid\","
              "\"client_secret\":\"oauth-secret-xyz\",\"scope\":\"write\"},"
              "\"batch_size\":500,\"rejected_records\":\"dead_letter\"}");
    free(text);
    yajl_tree_free(config);
    yajl_tree_free(spec);
}

static void test_default_object_takes_first_oneof_branch(void **state)
{
    yajl_val spec = load_plain(DATA "spec.json");
    yajl_val config = ab_test_sq_parse("{'api_url':'http://localhost:8080','api_key':'12345678'}");
    struct ab_error err;
    char *text;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_config_validate(config, spec, &err), AB_OK);
    text = to_json(config);
    /* the losing OAuth branch left no "scope" behind */
    assert_string_equal(text, "{\"api_url\":\"http://localhost:8080\",\"api_key\":\"12345678\","
                              "\"batch_size\":500,\"rejected_records\":\"dead_letter\","
                              "\"auth\":{\"mode\":\"none\"}}");
    free(text);
    yajl_tree_free(config);
    yajl_tree_free(spec);
}

static void test_load_reports_all_problems_at_once(void **state)
{
    yajl_val spec = load_plain(DATA "spec.json");
    yajl_val config = &not_null;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_config_load(DATA "bad.json", spec, &config, &err), AB_ERR_CONFIG);
    assert_null(config);
    assert_string_equal(
        err.message,
        "config is invalid: api_url: is required; "
        "api_key: must be at least 8 characters long; "
        "batch_size: must be <= 1000 (got 5000); "
        "rejected_records: must be one of dead_letter, fail (got 'merge'); "
        "stream_mappings[1].object: is required; "
        "stream_mappings[1].stream: must not be empty; "
        "stream_mappings[1].objekt: is not allowed (unknown field; did you mean 'object'?); "
        "auth.client_secret: is required; "
        "auth.client_id: must be a string, not an integer");
    assert_null(strstr(err.message, "sk-shrt"));
    yajl_tree_free(spec);
}

static void test_load_file_errors(void **state)
{
    yajl_val spec = load_plain(DATA "spec.json");
    yajl_val config = &not_null;
    struct ab_error err;
    const char *prefix = "cannot parse config '" DATA "truncated.json': invalid JSON: ";

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_config_load(DATA "missing.json", spec, &config, &err), AB_ERR_CONFIG);
    assert_null(config);
    assert_string_equal(err.message,
                        "cannot read config '" DATA "missing.json': No such file or directory");

    config = &not_null;
    assert_int_equal(ab_config_load(DATA "truncated.json", spec, &config, &err), AB_ERR_CONFIG);
    assert_null(config);
    assert_int_equal(strncmp(err.message, prefix, strlen(prefix)), 0);
    assert_null(strstr(err.message, "sk-live"));
    assert_null(strchr(err.message, '\n'));
    yajl_tree_free(spec);
}

static void test_load_too_large(void **state)
{
    char path[] = "/tmp/ab_test_config_XXXXXX";
    char want[256];
    yajl_val config = &not_null;
    struct ab_error err;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)16 * 1024 * 1024 + 1), 0);
    assert_int_equal(close(fd), 0);
    ab_error_init(&err);
    assert_int_equal(ab_config_load(path, NULL, &config, &err), AB_ERR_CONFIG);
    assert_null(config);
    (void)snprintf(want, sizeof(want), "cannot read config '%s': larger than 16777216 bytes", path);
    assert_string_equal(err.message, want);
    assert_int_equal(unlink(path), 0);
}

static void test_many_problems_are_capped(void **state)
{
    struct ab_buf s;
    struct ab_error err;
    yajl_val schema;
    yajl_val config = ab_test_sq_parse("{}");
    const char *more;
    int i;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&s, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_adds(&s, "{'required':[", &err), AB_OK);
    for (i = 0; i < 200; i++) {
        assert_int_equal(ab_buf_printf(&s, &err, "%s'field_%03d'", i ? "," : "", i), AB_OK);
    }
    assert_int_equal(ab_buf_adds(&s, "]}", &err), AB_OK);
    schema = ab_test_sq_parse(s.data);
    assert_int_equal(ab_config_validate(config, schema, &err), AB_ERR_CONFIG);
    assert_true(strlen(err.message) < AB_ERROR_MSG_MAX - 1);
    assert_non_null(strstr(err.message, "config is invalid: field_000: is required; "));
    more = strstr(err.message, " (and ");
    assert_non_null(more);
    {
        int shown = 0;
        int rest = 0;
        const char *p = strstr(err.message, ": is required");
        char *end = NULL;

        while (p) {
            shown++;
            p = strstr(p + 1, ": is required");
        }

        rest = (int)strtol(more + strlen(" (and "), &end, 10);
        assert_string_equal(end, " more problems)");
        assert_int_equal(shown + rest, 200);
    }
    ab_buf_release(&s);
    yajl_tree_free(schema);
    yajl_tree_free(config);
}

static void test_null_schema_and_config(void **state)
{
    struct ab_error err;
    yajl_val schema = ab_test_sq_parse("{'type':'object'}");

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_config_validate(NULL, NULL, &err), AB_OK);
    assert_int_equal(ab_config_validate(NULL, schema, &err), AB_ERR_CONFIG);
    yajl_tree_free(schema);
}

static void collect(void *arg, const char *secret)
{
    struct ab_error err;

    ab_error_init(&err);
    assert_int_equal(ab_buf_printf(arg, &err, "%s|", secret), AB_OK);
}

static void test_each_secret_walks_everything(void **state)
{
    static const struct {
        const char *schema;
        const char *config;
        const char *want;
    } scases[] = {
        {"{'properties':{'k':{'airbyte_secret':true},'n':{}}}", "{'k':'s1','n':'plain'}", "s1|"},
        {"{'properties':{'k':{'airbyte_secret':true}}}", "{'k':''}", ""},
        {"{'properties':{'k':{'airbyte_secret':true}}}", "{'k':5}", ""},
        {"{'properties':{'o':{'properties':{'p':{'properties':{'k':{'airbyte_secret':true}}}}}}}",
         "{'o':{'p':{'k':'deep'}}}", "deep|"},
        {"{'properties':{'l':{'items':{'properties':{'t':{'airbyte_secret':true}}}}}}",
         "{'l':[{'t':'a1'},{'x':1},{'t':'a2'}]}", "a1|a2|"},
        {"{'properties':{'auth':{'oneOf':[{'properties':{'tok':{'airbyte_secret':true}}},"
         "{'properties':{'pw':{'airbyte_secret':true}}}]}}}",
         "{'auth':{'tok':'t1','pw':'p1'}}", "t1|p1|"},
        {"{'properties':{'k':{'airbyte_secret':true}}}", "[]", ""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(scases) / sizeof(scases[0]); i++) {
        yajl_val schema = ab_test_sq_parse(scases[i].schema);
        yajl_val config = ab_test_sq_parse(scases[i].config);
        struct ab_buf got;

        ab_buf_init(&got, 4096);
        ab_config_each_secret(config, schema, collect, &got);
        assert_string_equal(got.data ? got.data : "", scases[i].want);
        ab_buf_release(&got);
        yajl_tree_free(config);
        yajl_tree_free(schema);
    }
    {
        yajl_val spec = load_plain(DATA "spec.json");
        yajl_val config = load_plain(DATA "valid.json");
        struct ab_buf got;

        ab_buf_init(&got, 4096);
        ab_config_each_secret(config, spec, collect, &got);
        assert_string_equal(got.data, "sk-live-abcdefgh|oauth-secret-xyz|");
        ab_buf_release(&got);
        yajl_tree_free(config);
        yajl_tree_free(spec);
    }
}

/* ---- unknown fields ---- */

struct warnings {
    char text[2048];
    size_t count;
};

static void collect_warning(void *arg, const char *message)
{
    struct warnings *w = arg;
    size_t len = strlen(w->text);

    (void)snprintf(w->text + len, sizeof(w->text) - len, "%s\n", message);
    w->count++;
}

#define UNKNOWN_SCHEMA                                                                             \
    "{'type':'object','required':['api_url'],'properties':{"                                       \
    "'api_url':{'type':'string'},'batch_size':{'type':'integer','default':500},"                   \
    "'max_in_flight':{'type':'integer'},'log_level':{'type':'string'},"                            \
    "'stream_mappings':{'type':'array','items':{'type':'object','properties':"                     \
    "{'stream':{'type':'string'}}}}}}"

/* One WARN per unknown top-level field, naming the closest known one when it
 * looks like a typo; the fields stay allowed and defaults are still filled. */
static void test_unknown_fields_warn_with_suggestion(void **state)
{
    yajl_val schema = ab_test_sq_parse(UNKNOWN_SCHEMA);
    yajl_val config = ab_test_sq_parse(
        "{'api_url':'https://x','batchsize':5,'max_inflight':2,'LOG_LEVEL':'DEBUG',"
        "'colour':'blue','stream_mappings':[{'stream':'s','strem':'t'}]}");
    struct warnings w;
    struct ab_error err;

    (void)state;
    memset(&w, 0, sizeof(w));
    ab_error_init(&err);
    assert_int_equal(ab_config_validate_warn(config, schema, collect_warning, &w, &err), AB_OK);
    assert_string_equal(w.text,
                        "config: unknown field 'batchsize' (did you mean 'batch_size'?)\n"
                        "config: unknown field 'max_inflight' (did you mean 'max_in_flight'?)\n"
                        "config: unknown field 'LOG_LEVEL' (did you mean 'log_level'?)\n"
                        "config: unknown field 'colour'\n");
    assert_int_equal(w.count, 4);
    /* allowed, and the default of the field meant is filled in */
    assert_int_equal(ab_json_get_int(config, "batch_size", 0), 500);
    assert_int_equal(ab_json_get_int(config, "batchsize", 0), 5);
    yajl_tree_free(config);

    /* also reported when the config is invalid; no callback: nothing */
    memset(&w, 0, sizeof(w));
    config = ab_test_sq_parse("{'batchsize':5}");
    assert_int_equal(ab_config_validate_warn(config, schema, collect_warning, &w, &err),
                     AB_ERR_CONFIG);
    assert_int_equal(w.count, 1);
    assert_int_equal(ab_config_validate(config, schema, &err), AB_ERR_CONFIG);
    yajl_tree_free(config);
    yajl_tree_free(schema);
}

/* A key is quoted capped and with control characters and quotes replaced. */
static void test_unknown_field_names_are_sanitised(void **state)
{
    /* a key with a newline and a quote, and a key of 74 characters */
    static const char text[] =
        "{\"api_url\":\"u\",\"a\\n'b\":1,"
        "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\":2}";
    yajl_val schema = ab_test_sq_parse(UNKNOWN_SCHEMA);
    yajl_val config;
    struct warnings w;
    struct ab_error err;

    (void)state;
    ab_error_init(&err);
    config = ab_json_parse(text, strlen(text), &err);
    assert_non_null(config);
    memset(&w, 0, sizeof(w));
    assert_int_equal(ab_config_validate_warn(config, schema, collect_warning, &w, &err), AB_OK);
    assert_int_equal(w.count, 2);
    assert_non_null(strstr(w.text, "config: unknown field 'a??b'\n"));
    assert_non_null(strstr(w.text,
                           "config: unknown field '"
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                           "...'\n"));
    yajl_tree_free(config);
    yajl_tree_free(schema);
}

/* The loader passes warnings on, and with additionalProperties false the
 * problem carries the suggestion. */
static void test_load_warns_and_strict_schema_suggests(void **state)
{
    yajl_val spec = load_plain(DATA "spec.json");
    yajl_val config = NULL;
    yajl_val schema;
    struct warnings w;
    struct ab_error err;

    (void)state;
    memset(&w, 0, sizeof(w));
    ab_error_init(&err);
    assert_int_equal(
        ab_config_load_warn(DATA "valid.json", spec, collect_warning, &w, &config, &err), AB_OK);
    assert_int_equal(w.count, 0);
    yajl_tree_free(config);
    yajl_tree_free(spec);

    schema = ab_test_sq_parse("{'type':'object','additionalProperties':false,"
                              "'properties':{'batch_size':{'type':'integer'}}}");
    config = ab_test_sq_parse("{'batch_sise':1}");
    assert_int_equal(ab_config_validate_warn(config, schema, collect_warning, &w, &err),
                     AB_ERR_CONFIG);
    assert_string_equal(err.message, "config is invalid: batch_sise: is not allowed (unknown "
                                     "field; did you mean 'batch_size'?)");
    assert_int_equal(w.count, 0);
    yajl_tree_free(config);
    yajl_tree_free(schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_load_valid_fills_defaults),
        cmocka_unit_test(test_default_object_takes_first_oneof_branch),
        cmocka_unit_test(test_load_reports_all_problems_at_once),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_load_too_large),
        cmocka_unit_test(test_many_problems_are_capped),
        cmocka_unit_test(test_null_schema_and_config),
        cmocka_unit_test(test_each_secret_walks_everything),
        cmocka_unit_test(test_unknown_fields_warn_with_suggestion),
        cmocka_unit_test(test_unknown_field_names_are_sanitised),
        cmocka_unit_test(test_load_warns_and_strict_schema_suggests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
