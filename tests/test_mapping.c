/* test_mapping.c - stream to object mappings and mapped record output. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"
#include "ab/mapping.h"

#include "ab_golden.h"
#include "ab_test.h"

static const char *const objects[] = {"customers", "orders", NULL};

/* A copy of sq with ' replaced by " (caller frees). */
static char *sq_text(const char *sq)
{
    size_t n = strlen(sq);
    char *t = malloc(n + 1);
    size_t i;

    assert_non_null(t);
    for (i = 0; i <= n; i++) {
        t[i] = sq[i];
        if (t[i] == '\'') {
            t[i] = '"';
        }
    }
    return t;
}

static void parse_ok(struct ab_mappings *ms, const char *sq)
{
    struct ab_error err;
    yajl_val arr = ab_test_sq_parse(sq);

    ab_error_init(&err);
    if (ab_mappings_parse(ms, arr, objects, &err) != AB_OK) {
        fail_msg("cannot parse %s: %s", sq, err.message);
    }
    yajl_tree_free(arr);
}

static void test_parse_errors_name_the_index(void **state)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"{}", "stream_mappings: must be an array"},
        {"[1]", "stream_mappings[0]: must be an object"},
        {"[{'stream':'customers'},{'object':'orders'}]",
         "stream_mappings[1].stream: is required (a stream name)"},
        {"[{'stream':''}]", "stream_mappings[0].stream: is required (a stream name)"},
        {"[{'stream':'s','namespace':1,'object':'orders'}]",
         "stream_mappings[0].namespace: must be a string"},
        {"[{'stream':'s','object':1}]", "stream_mappings[0].object: must be a string"},
        {"[{'stream':'s','object':'orders'},{'stream':'t','object':'contacts'}]",
         "stream_mappings[1].object: unknown object 'contacts' (expected one of customers, "
         "orders)"},
        {"[{'stream':'clientes'}]",
         "stream_mappings[0].object: unknown object 'clientes' (expected one of customers, "
         "orders)"},
        {"[{'stream':'s','object':'orders','fields':['id']}]",
         "stream_mappings[0].fields: must be an object of {\"target\": \"source.path\"}"},
        {"[{'stream':'s','object':'orders','fields':{}}]",
         "stream_mappings[0].fields: must list at least one field"},
        {"[{'stream':'s','object':'orders','fields':{'id':1}}]",
         "stream_mappings[0].fields.id: must be a source field path string or a transform object"},
        {"[{'stream':'s','object':'orders','fields':{'id':'x','email':''}}]",
         "stream_mappings[0].fields.email: empty field path"},
        {"[{'stream':'s','object':'orders','fields':{'email':'contato..email'}}]",
         "stream_mappings[0].fields.email: empty segment in field path 'contato..email'"},
        {"[{'stream':'s','object':'orders','fields':{'':'x'}}]",
         "stream_mappings[0].fields: empty target field name"},
        {"[{'stream':'s','object':'orders'},{'stream':'s','object':'customers'}]",
         "stream_mappings[1]: stream 's' is already mapped by stream_mappings[0]"},
        {"[{'stream':'s','namespace':'erp','object':'orders'},{'stream':'s','object':'orders'},"
         "{'stream':'s','namespace':'erp','object':'customers'}]",
         "stream_mappings[2]: stream 's' is already mapped by stream_mappings[0]"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_mappings ms;
        struct ab_error err;
        yajl_val arr = ab_test_sq_parse(cases[i].json);

        ab_error_init(&err);
        assert_int_equal(ab_mappings_parse(&ms, arr, objects, &err), AB_ERR_CONFIG);
        if (strcmp(err.message, cases[i].message) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err.message, cases[i].message);
        }
        assert_int_equal(ms.n, 0);
        assert_null(ms.m);
        yajl_tree_free(arr);
    }
}

static void test_parse_null_and_absent(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    yajl_val null = ab_test_sq_parse("null");

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&ms, NULL, objects, &err), AB_OK);
    assert_int_equal(ms.n, 0);
    ab_mappings_release(&ms);
    assert_int_equal(ab_mappings_parse(&ms, null, objects, &err), AB_OK);
    assert_int_equal(ms.n, 0);
    ab_mappings_release(&ms);
    ab_mappings_release(&ms);
    ab_mappings_release(NULL);
    yajl_tree_free(null);
}

static void test_parse_shapes(void **state)
{
    struct ab_mappings ms;
    char buf[64];

    (void)state;
    parse_ok(&ms, "[{'stream':'clientes','namespace':'erp','object':'customers',"
                  "'fields':{'external_id':'id','email':'contato.email'}},"
                  "{'stream':'orders'},"
                  "{'stream':'pedidos','namespace':null,'object':'orders','fields':null}]");
    assert_int_equal(ms.n, 3);
    assert_string_equal(ms.m[0].stream, "clientes");
    assert_string_equal(ms.m[0].ns, "erp");
    assert_string_equal(ms.m[0].object, "customers");
    assert_false(ms.m[0].identity);
    assert_int_equal(ms.m[0].nfields, 2);
    assert_string_equal(ms.m[0].fields[0].to, "external_id");
    assert_string_equal(ab_path_str(&ms.m[0].fields[0].from, buf, sizeof(buf)), "id");
    assert_string_equal(ms.m[0].fields[1].to, "email");
    assert_int_equal(ms.m[0].fields[1].from.n, 2);
    assert_string_equal(ab_path_str(&ms.m[0].fields[1].from, buf, sizeof(buf)), "contato.email");
    /* no object: the stream's own name; no fields: identity */
    assert_string_equal(ms.m[1].object, "orders");
    assert_null(ms.m[1].ns);
    assert_true(ms.m[1].identity);
    assert_true(ms.m[2].identity);
    assert_null(ms.m[2].ns);
    ab_mappings_release(&ms);
    assert_int_equal(ms.n, 0);
}

static void test_write_table(void **state)
{
    static const struct {
        const char *mappings;
        const char *stream;
        const char *data;
        const char *extra_key;
        const char *extra_val;
        const char *want;
    } cases[] = {
        /* explicit fields, nested source paths, absent members left out */
        {"[{'stream':'s','object':'customers','fields':{'external_id':'id','email':"
         "'contato.email','phone':'contato.phone','city':'addr.city'}}]",
         "s", "{'id':'c-1','contato':{'email':'a@b.c','phone':null},'addr':'flat','x':1}", NULL,
         NULL, "{'external_id':'c-1','email':'a@b.c','phone':null}"},
        /* numbers keep their source text, objects and arrays are copied */
        {"[{'stream':'s','object':'orders','fields':{'total':'t','big':'b','items':'i'}}]", "s",
         "{'t':1.50,'b':123456789012345678901234567890,'i':[{'q':2e3}]}", NULL, NULL,
         "{'total':1.50,'big':123456789012345678901234567890,'items':[{'q':2e3}]}"},
        /* identity drops Airbyte's own fields only */
        {"[{'stream':'s','object':'orders'}]", "s",
         "{'_ab_cdc_deleted_at':null,'id':1,'_airbyte_raw_id':'r','_abc':2,'airbyte_x':3,"
         "'_ab_cdc_lsn':4,'name':'n\\u00e9\\n'}",
         NULL, NULL, "{'id':1,'_abc':2,'airbyte_x':3,'name':'n\xc3\xa9\\n'}"},
        /* extra brand appended when absent */
        {"[{'stream':'s','object':'orders'}]", "s", "{'id':1}", "brand", "acme",
         "{'id':1,'brand':'acme'}"},
        /* kept when present */
        {"[{'stream':'s','object':'orders'}]", "s", "{'brand':'other','id':1}", "brand", "acme",
         "{'brand':'other','id':1}"},
        /* filled in place when null */
        {"[{'stream':'s','object':'orders'}]", "s", "{'brand':null,'id':1}", "brand", "acme",
         "{'brand':'acme','id':1}"},
        /* explicit mapping: brand mapped from an absent source gets the default */
        {"[{'stream':'s','object':'orders','fields':{'id':'id','brand':'meta.brand'}}]", "s",
         "{'id':1}", "brand", "acme", "{'id':1,'brand':'acme'}"},
        {"[{'stream':'s','object':'orders','fields':{'id':'id','brand':'meta.brand'}}]", "s",
         "{'id':1,'meta':{'brand':'b2'}}", "brand", "acme", "{'id':1,'brand':'b2'}"},
        /* brand not among the fields is still added */
        {"[{'stream':'s','object':'orders','fields':{'id':'id'}}]", "s", "{'id':1,'brand':'z'}",
         "brand", "acme", "{'id':1,'brand':'acme'}"},
        /* no extra_val: nothing added */
        {"[{'stream':'s','object':'orders'}]", "s", "{'id':1}", "brand", NULL, "{'id':1}"},
        /* empty record */
        {"[{'stream':'s','object':'orders'}]", "s", "{'_ab_x':1}", NULL, NULL, "{}"},
        {"[{'stream':'s','object':'orders'}]", "s", "{}", "brand", "a\"b", "{'brand':'a\\'b'}"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_mappings ms;
        struct ab_error err;
        struct ab_buf out;
        const struct ab_mapping *m;
        yajl_val data = ab_test_sq_parse(cases[i].data);
        char *want = sq_text(cases[i].want);
        ab_error_init(&err);
        parse_ok(&ms, cases[i].mappings);
        m = ab_mappings_resolve(&ms, cases[i].stream, NULL, objects, &err);
        assert_non_null(m);
        ab_buf_init(&out, 4096);
        assert_int_equal(ab_buf_adds(&out, "prefix:", &err), AB_OK);
        assert_int_equal(
            ab_mapping_write(m, data, cases[i].extra_key, cases[i].extra_val, &out, &err), AB_OK);
        if (strcmp(out.data + 7, want) != 0) {
            fail_msg("case %zu: got %s, want %s", i, out.data + 7, want);
        }
        ab_buf_release(&out);
        ab_mappings_release(&ms);
        free(want);
        yajl_tree_free(data);
    }
}

static void test_write_errors_leave_buffer_unchanged(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    struct ab_buf out;
    const struct ab_mapping *m;
    yajl_val arr = ab_test_sq_parse("[1]");
    yajl_val big = ab_test_sq_parse("{'id':'0123456789012345678901234567890123456789'}");

    (void)state;
    ab_error_init(&err);
    parse_ok(&ms, "[{'stream':'s','object':'orders'}]");
    m = ab_mappings_resolve(&ms, "s", NULL, objects, &err);
    assert_non_null(m);

    ab_buf_init(&out, 32);
    assert_int_equal(ab_buf_adds(&out, "keep", &err), AB_OK);
    assert_int_equal(ab_mapping_write(m, arr, NULL, NULL, &out, &err), AB_ERR_REJECTED);
    assert_string_equal(err.message, "record data is array, not an object");
    assert_int_equal(ab_mapping_write(m, NULL, NULL, NULL, &out, &err), AB_ERR_REJECTED);
    assert_int_equal(ab_mapping_write(m, big, NULL, NULL, &out, &err), AB_ERR_PROTOCOL);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    ab_buf_release(&out);
    ab_mappings_release(&ms);
    yajl_tree_free(arr);
    yajl_tree_free(big);
}

static void test_resolve(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    const struct ab_mapping *m;
    const struct ab_mapping *orders;
    const struct ab_mapping *customers;

    (void)state;
    ab_error_init(&err);
    parse_ok(&ms, "[{'stream':'clientes','object':'customers','fields':{'id':'id'}},"
                  "{'stream':'clientes','namespace':'erp','object':'orders'},"
                  "{'stream':'customers','namespace':'crm','object':'orders'}]");

    /* any namespace */
    m = ab_mappings_resolve(&ms, "clientes", NULL, objects, &err);
    assert_ptr_equal(m, &ms.m[0]);
    m = ab_mappings_resolve(&ms, "clientes", "other", objects, &err);
    assert_ptr_equal(m, &ms.m[0]);
    /* an exact namespace beats "any" */
    m = ab_mappings_resolve(&ms, "clientes", "erp", objects, &err);
    assert_ptr_equal(m, &ms.m[1]);

    /* default identity by name, stored and stable across later resolves */
    orders = ab_mappings_resolve(&ms, "orders", NULL, objects, &err);
    assert_non_null(orders);
    assert_true(orders->identity);
    assert_string_equal(orders->object, "orders");
    assert_string_equal(orders->stream, "orders");
    customers = ab_mappings_resolve(&ms, "customers", "public", objects, &err);
    assert_non_null(customers);
    assert_true(customers->identity);
    assert_string_equal(customers->object, "customers");
    assert_ptr_equal(ab_mappings_resolve(&ms, "orders", "x", objects, &err), orders);
    assert_string_equal(orders->object, "orders");
    assert_int_equal(ms.nimplicit, 2);
    /* the explicit mapping for namespace crm still wins there */
    assert_ptr_equal(ab_mappings_resolve(&ms, "customers", "crm", objects, &err), &ms.m[2]);

    /* unknown stream */
    ab_error_init(&err);
    assert_null(ab_mappings_resolve(&ms, "invoices", NULL, objects, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    assert_string_equal(err.message, "stream 'invoices' has no entry in stream_mappings and is "
                                     "not an object name (customers, orders)");
    assert_null(ab_mappings_resolve(&ms, "invoices", "erp", objects, &err));
    assert_string_equal(err.message, "stream 'invoices' (namespace 'erp') has no entry in "
                                     "stream_mappings and is not an object name (customers, "
                                     "orders)");
    ab_mappings_release(&ms);
    assert_int_equal(ms.nimplicit, 0);
    assert_null(ms.implicit);
}

static void test_get(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    const struct ab_mapping *m;
    yajl_val data = ab_test_sq_parse("{'id':7,'contato':{'email':'e'},'_ab_x':1}");

    (void)state;
    ab_error_init(&err);
    parse_ok(&ms, "[{'stream':'s','object':'customers','fields':{'external_id':'id',"
                  "'email':'contato.email','phone':'contato.phone'}}]");
    m = ab_mappings_resolve(&ms, "s", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_mapping_get(m, data, "external_id")->u.number.i, 7);
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "email")), "e");
    assert_null(ab_mapping_get(m, data, "phone"));
    assert_null(ab_mapping_get(m, data, "id")); /* a source name, not a target */
    assert_null(ab_mapping_get(m, data, NULL));

    m = ab_mappings_resolve(&ms, "orders", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_mapping_get(m, data, "id")->u.number.i, 7);
    assert_non_null(ab_mapping_get(m, data, "_ab_x"));
    assert_null(ab_mapping_get(m, data, "contato.email"));
    assert_null(ab_mapping_get(NULL, data, "id"));
    ab_mappings_release(&ms);
    yajl_tree_free(data);
}

/* A Bling sales order into a CRM360 order: every transform. */
static void test_transforms(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    struct ab_buf out;
    const struct ab_mapping *m;
    yajl_val data = ab_test_sq_parse(
        "{'id':16000000238,'data':'2025-11-13','total':318.1,'situacao':{'id':9},"
        "'contato':{'id':16000000053},'itens':[{'codigo':'CAM-1-P','quantidade':2,'valor':4.9},"
        "{'codigo':'SAI-2','quantidade':1,'valor':'10'}],'nota':'x','saldo':12.0,"
        "'saldo_texto':'-3.0','fracao':1500.75,'var':'Tamanho: G ;Cor:Verde;Estilo:Slim',"
        "'img':'https://x.example/1.jpg','img_empty':''}");

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    parse_ok(&ms, "[{'stream':'pedidos','object':'orders','fields':{"
                  "'external_id':{'from':'id','as':'string'},"
                  "'customer_external_id':{'from':'contato.id','as':'string'},"
                  "'status':{'from':'situacao.id','map':{'9':'delivered','6':'pending'},"
                  "'default':'pending'},"
                  "'currency':{'value':'BRL'},"
                  "'total':{'from':'total','as':'decimal'},"
                  "'placed_at':{'from':'data','as':'rfc3339','utc_offset_minutes':-180},"
                  "'items':{'from':'itens','each':{'sku':'codigo','quantity':'quantidade',"
                  "'unit_price':{'from':'valor','as':'decimal','scale':2}}},"
                  "'note':{'from':'nota','as':'decimal'},"
                  "'qty':{'from':'saldo','as':'integer'},"
                  "'qty_text':{'from':'saldo_texto','as':'integer'},"
                  "'qty_frac':{'from':'fracao','as':'integer'},"
                  "'attrs':{'from':'var','as':'pairs','keys':{'Tamanho':'size','Cor':'color'}},"
                  "'imgs':{'from':'img','as':'array'},"
                  "'imgs_empty':{'from':'img_empty','as':'array'},"
                  "'bad_pairs':{'from':'nota','as':'pairs'},"
                  "'missing':{'from':'nope','default':null}}}]");
    m = ab_mappings_resolve(&ms, "pedidos", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_mapping_write(m, data, "brand", "acme", &out, &err), AB_OK);
    assert_string_equal(out.data,
                        "{\"external_id\":\"16000000238\",\"customer_external_id\":"
                        "\"16000000053\",\"status\":\"delivered\",\"currency\":\"BRL\","
                        "\"total\":\"318.10\",\"placed_at\":\"2025-11-13T03:00:00Z\","
                        "\"items\":[{\"sku\":\"CAM-1-P\",\"quantity\":2,\"unit_price\":"
                        "\"4.90\"},{\"sku\":\"SAI-2\",\"quantity\":1,\"unit_price\":"
                        "\"10.00\"}],\"qty\":12,\"qty_text\":-3,\"attrs\":{\"size\":\"G\","
                        "\"color\":\"Verde\",\"Estilo\":\"Slim\"},\"imgs\":["
                        "\"https://x.example/1.jpg\"],\"missing\":null,"
                        "\"brand\":\"acme\"}");
    /* keys read by the destinations get the converted value */
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "external_id")), "16000000238");
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "status")), "delivered");
    yajl_tree_free(data);
    /* an unmapped status takes the default; a missing id leaves the field out */
    data = ab_test_sq_parse("{'situacao':{'id':15},'total':'abc','itens':'no'}");
    ab_buf_reset(&out);
    assert_int_equal(ab_mapping_write(m, data, NULL, NULL, &out, &err), AB_OK);
    assert_string_equal(out.data, "{\"status\":\"pending\",\"currency\":\"BRL\","
                                  "\"missing\":null}");
    assert_null(ab_mapping_get(m, data, "external_id"));
    yajl_tree_free(data);
    ab_mappings_release(&ms);
    ab_buf_release(&out);
}

/* "fields" makes an object of the same record's fields; a path steps into
 * arrays by index. */
static void test_object_and_index(void **state)
{
    struct ab_mappings ms;
    const struct ab_mapping *m;
    struct ab_error err;
    struct ab_buf out;
    yajl_val data = ab_test_sq_parse("{'code':7,'size':'M','colorName':'PRETO','emails':[{'email':"
                                     "'a@b.co'},{'email':'c@d.co'}],'c':{'name':'V24'}}");

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    parse_ok(&ms, "[{'stream':'p','object':'orders','fields':{"
                  "'sku':{'from':'code','as':'string'},"
                  "'email':'emails.1.email','none':'emails.2.email','bad':'emails.x',"
                  "'lead':'emails.01.email',"
                  "'attributes':{'fields':{'size':'size','color':'colorName',"
                  "'collection':'c.name','gender':'nope'}}}}]");
    m = ab_mappings_resolve(&ms, "p", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_mapping_write(m, data, NULL, NULL, &out, &err), AB_OK);
    assert_string_equal(out.data, "{\"sku\":\"7\",\"email\":\"c@d.co\",\"attributes\":"
                                  "{\"size\":\"M\",\"color\":\"PRETO\",\"collection\":"
                                  "\"V24\"}}");
    yajl_tree_free(data);
    ab_mappings_release(&ms);
    ab_buf_release(&out);
}

/* Dotted target names build nested objects: targets under one parent merge
 * into one object, in the order the config first names them; a parent with
 * no member value is left out. */
static void test_dotted_targets(void **state)
{
    struct ab_mappings ms;
    const struct ab_mapping *m;
    struct ab_error err;
    struct ab_buf out;
    yajl_val data = ab_test_sq_parse(
        "{'code':7,'grade':{'Tamanho':'M'},'cor':2,'t':'Saia','c':{'name':'V24'},'x':[1,2],"
        "'itens':[{'codigo':'A','qtd':2},{'codigo':'B'}],'fone':'11999990000'}");
    yajl_val empty = ab_test_sq_parse("{'code':8,'t':'Blusa'}");
    char *in;
    char *want;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    parse_ok(&ms, "[{'stream':'p','object':'orders','fields':{"
                  "'sku':{'from':'code','as':'string'},"
                  "'attributes.size':'grade.Tamanho',"
                  "'attributes.color':{'from':'cor','map':{'2':'Verde'}},"
                  "'title':'t',"
                  "'attributes.collection':'c.name',"
                  "'meta.a.b':'x',"
                  "'meta.a.c':{'value':1},"
                  "'meta.d':{'fields':{'phone':'fone','extra.n':'code'}},"
                  "'items':{'from':'itens','each':{'sku':'codigo','q.n':'qtd'}}}}]");
    m = ab_mappings_resolve(&ms, "p", NULL, objects, &err);
    assert_non_null(m);
    assert_int_equal(ab_mapping_write(m, data, "brand", "acme", &out, &err), AB_OK);
    assert_string_equal(out.data,
                        "{\"sku\":\"7\",\"attributes\":{\"size\":\"M\",\"color\":\"Verde\","
                        "\"collection\":\"V24\"},\"title\":\"Saia\",\"meta\":{\"a\":{\"b\":[1,2],"
                        "\"c\":1},\"d\":{\"phone\":\"11999990000\",\"extra\":{\"n\":7}}},"
                        "\"items\":[{\"sku\":\"A\",\"q\":{\"n\":2}},{\"sku\":\"B\"}],"
                        "\"brand\":\"acme\"}");
    /* a dotted name reads one value; the parent's name the whole object */
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "attributes.size")), "M");
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "attributes.color")), "Verde");
    assert_int_equal(ab_mapping_get(m, data, "meta.a.c")->u.number.i, 1);
    assert_string_equal(ab_json_str(ab_mapping_get(m, data, "meta.d.phone")), "11999990000");
    assert_true(YAJL_IS_OBJECT(ab_mapping_get(m, data, "attributes")));
    assert_int_equal(ab_mapping_get(m, data, "attributes")->u.object.len, 3);
    assert_null(ab_mapping_get(m, data, "attributes.gender"));
    assert_null(ab_mapping_get(m, data, "title.x"));
    assert_null(ab_mapping_get(m, data, "size"));
    /* no attribute has a value: no attributes at all; meta keeps its constant */
    ab_buf_reset(&out);
    assert_int_equal(ab_mapping_write(m, empty, NULL, NULL, &out, &err), AB_OK);
    assert_string_equal(out.data, "{\"sku\":\"8\",\"title\":\"Blusa\",\"meta\":{\"a\":"
                                  "{\"c\":1},\"d\":{\"extra\":{\"n\":8}}}}");
    assert_null(ab_mapping_get(m, empty, "attributes"));
    /* rejections name the dotted target and its source path */
    in = sq_text("[{'field':'attributes.size','code':'too_long'},{'field':'meta.a.c'},"
                 "{'field':'meta.d.extra.n'},{'field':'attributes'}]");
    want = sq_text("[{'field':'attributes.size','code':'too_long','source_field':'grade.Tamanho',"
                   "'mapping':'attributes.size <- grade.Tamanho'},{'field':'meta.a.c'},"
                   "{'field':'meta.d.extra.n','source_field':'code','mapping':"
                   "'meta.d.extra.n <- code'},{'field':'attributes'}]");
    assert_int_equal(ab_mapping_annotate_errors(m, in, &out, &err), AB_OK);
    assert_string_equal(out.data, want);
    free(in);
    free(want);
    ab_buf_release(&out);
    /* the byte limit of the output holds inside nested objects; a failed
     * write leaves the buffer as it was */
    ab_buf_init(&out, 40);
    assert_int_equal(ab_buf_adds(&out, "keep", &err), AB_OK);
    assert_int_equal(ab_mapping_write(m, data, NULL, NULL, &out, &err), AB_ERR_PROTOCOL);
    assert_string_equal(out.data, "keep");
    ab_buf_release(&out);
    ab_mappings_release(&ms);
    /* the names of an object left out do not count against the limit */
    parse_ok(&ms, "[{'stream':'p','object':'orders','fields':{'sku':'t',"
                  "'a_long_parent_name_of_forty_characters.a_long_member_name.c':'nope'}}]");
    m = ab_mappings_resolve(&ms, "p", NULL, objects, &err);
    assert_non_null(m);
    ab_buf_init(&out, 40);
    assert_int_equal(ab_buf_adds(&out, "keep", &err), AB_OK);
    assert_int_equal(ab_mapping_write(m, empty, NULL, NULL, &out, &err), AB_OK);
    assert_string_equal(out.data, "keep{\"sku\":\"Blusa\"}");
    ab_buf_release(&out);
    yajl_tree_free(data);
    yajl_tree_free(empty);
    ab_mappings_release(&ms);
}

static void test_dotted_target_errors(void **state)
{
    static const struct {
        const char *fields;
        const char *message;
    } cases[] = {
        {"{'attributes':'a','attributes.size':'s'}",
         "stream_mappings[0].fields: 'attributes' and 'attributes.size' both set 'attributes' (a "
         "target is either one value or an object of dotted targets)"},
        {"{'attributes.size':'s','sku':'k','attributes':'a'}",
         "stream_mappings[0].fields: 'attributes' and 'attributes.size' both set 'attributes'"},
        {"{'a.b':'x','a.b.c':'y'}", "'a.b' and 'a.b.c' both set 'a.b'"},
        {"{'a.b.c':'y','a.b':{'value':1}}", "'a.b' and 'a.b.c' both set 'a.b'"},
        {"{'a':{'fields':{'b':'x'}},'a.c':'y'}", "'a' and 'a.c' both set 'a'"},
        {"{'a..b':'x'}", "stream_mappings[0].fields.a..b: empty part in the target path"},
        {"{'.a':'x'}", "stream_mappings[0].fields..a: empty part in the target path"},
        {"{'a.':'x'}", "stream_mappings[0].fields.a.: empty part in the target path"},
        {"{'a.b.c.d.e.f.g.h.i':'x'}",
         "stream_mappings[0].fields.a.b.c.d.e.f.g.h.i: a target path has at most 8 parts"},
        {"{'attributes.size':{'from':'x','as':'date'}}",
         "stream_mappings[0].fields.attributes.size.as: 'date' is not one of"},
        {"{'attributes.size':'x..y'}",
         "stream_mappings[0].fields.attributes.size: empty segment in field path 'x..y'"},
        {"{'attributes.size':3}",
         "stream_mappings[0].fields.attributes.size: must be a source field path string"},
        {"{'a':{'fields':{'b':'x','b.c':'y'}}}", "'b' and 'b.c' both set 'b'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_mappings ms;
        struct ab_error err;
        char json[512];
        yajl_val arr;

        (void)snprintf(json, sizeof(json), "[{'stream':'s','object':'orders','fields':%s}]",
                       cases[i].fields);
        arr = ab_test_sq_parse(json);
        ab_error_init(&err);
        assert_int_equal(ab_mappings_parse(&ms, arr, objects, &err), AB_ERR_CONFIG);
        if (!strstr(err.message, cases[i].message)) {
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].message);
        }
        assert_int_equal(ms.n, 0);
        assert_null(ms.m);
        yajl_tree_free(arr);
    }
}

static void test_transform_errors(void **state)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"[{'stream':'s','object':'orders','fields':{'a':{'as':'string'}}}]",
         "fields.a: a transform needs"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','as':'date'}}}]",
         "fields.a.as: 'date' is not one of"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','scale':40,'as':'decimal'}}}]",
         "fields.a.scale: 0 to 12"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','keys':{}}}}]",
         "go with \"as\": \"pairs\""},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','as':'pairs','keys':[1]}}}]",
         "fields.a.keys: an object of texts"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','as':'pairs','assign':''}}}]",
         "fields.a.assign: a non-empty text"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'value':1,'from':'x'}}}]",
         "\"value\" stands alone"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','map':[1]}}}]",
         "fields.a.map: must be"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','frm':'y'}}}]",
         "unknown transform member 'frm'"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','each':{'b':{'from':'y','as':'"
         "x'}}}}}]",
         "fields.b.as: 'x' is not one of"},
        {"[{'stream':'s','object':'orders','fields':{'a':{'from':'x','as':'string','each':{'b':'c'}"
         "}}}]",
         "\"each\" goes without"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_mappings ms;
        struct ab_error err;
        yajl_val arr = ab_test_sq_parse(cases[i].json);

        ab_error_init(&err);
        assert_int_equal(ab_mappings_parse(&ms, arr, objects, &err), AB_ERR_CONFIG);
        if (!strstr(err.message, cases[i].message)) {
            fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].message);
        }
        assert_int_equal(ms.n, 0);
        yajl_tree_free(arr);
    }
}

/* Errors name the source path of each mapped target field. */
static void test_annotate_errors(void **state)
{
    static const struct {
        const char *stream;
        const char *in;
        const char *want;
    } cases[] = {
        {"s", "[{'field':'email','code':'invalid_format'}]",
         "[{'field':'email','code':'invalid_format','source_field':'contato.email',"
         "'mapping':'email <- contato.email'}]"},
        /* unmapped target field, no field, already annotated: as they are */
        {"s", "[{'field':'brand','code':'x'},{'code':'y'},{'field':'email','source_field':'z'}]",
         "[{'field':'brand','code':'x'},{'code':'y'},{'field':'email','source_field':'z'}]"},
        /* identity mapping: a field comes from itself */
        {"orders", "[{'field':'total','code':'x'}]",
         "[{'field':'total','code':'x','source_field':'total','mapping':'total <- total'}]"},
        /* not an array, not JSON, empty */
        {"s", "{'field':'email'}", "{'field':'email'}"},
        {"s", "[{", "[{"},
        {"s", "", "[]"},
    };
    struct ab_mappings ms;
    struct ab_error err;
    struct ab_buf out;
    size_t i;

    (void)state;
    ab_error_init(&err);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    parse_ok(&ms, "[{'stream':'s','object':'customers','fields':{'external_id':'id',"
                  "'email':'contato.email','brand':{'value':'acme'}}}]");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ab_mapping *m = ab_mappings_resolve(&ms, cases[i].stream, NULL, objects, &err);
        char *in = sq_text(cases[i].in);
        char *want = sq_text(cases[i].want);

        assert_non_null(m);
        assert_int_equal(ab_mapping_annotate_errors(m, in, &out, &err), AB_OK);
        assert_non_null(out.data);
        assert_string_equal(out.data, want);
        free(in);
        free(want);
    }
    assert_int_equal(ab_mapping_annotate_errors(NULL, "[{\"field\":\"a\"}]", &out, &err), AB_OK);
    assert_string_equal(out.data, "[{\"field\":\"a\"}]");
    ab_buf_release(&out);
    ab_mappings_release(&ms);
}

static void test_any_object_when_list_is_null(void **state)
{
    struct ab_mappings ms;
    struct ab_error err;
    yajl_val arr = ab_test_sq_parse("[{'stream':'s','object':'Anything'}]");

    (void)state;
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&ms, arr, NULL, &err), AB_OK);
    assert_string_equal(ms.m[0].object, "Anything");
    assert_null(ab_mappings_resolve(&ms, "t", NULL, NULL, &err));
    assert_int_equal(err.code, AB_ERR_CONFIG);
    ab_mappings_release(&ms);
    yajl_tree_free(arr);
}

/* ---- the byte-range path ---------------------------------------------------- */

/* Equal JSON values: members in order, numbers by their text, strings by
 * their unescaped bytes. */
static bool json_equal(yajl_val a, yajl_val b)
{
    size_t i;

    if (!a || !b || a->type != b->type) {
        return a == b;
    }
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return false;
        }
        for (i = 0; i < a->u.object.len; i++) {
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0 ||
                !json_equal(a->u.object.values[i], b->u.object.values[i])) {
                return false;
            }
        }
        return true;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return false;
        }
        for (i = 0; i < a->u.array.len; i++) {
            if (!json_equal(a->u.array.values[i], b->u.array.values[i])) {
                return false;
            }
        }
        return true;
    default:
        return true; /* null, true, false: the type says it all */
    }
}

/* RECORD lines whose data is tricky to copy byte by byte ('-quoted). */
static const char *const tricky[] = {
    /* _ab_ members first, last, in between, and _airbyte_ ones */
    "{'type':'RECORD','record':{'stream':'customers','data':{'_ab_cdc_lsn':1,'id':'a','n':2,"
    "'_airbyte_raw_id':'x','m':[1,2,{'_ab_keep':'nested _ab_ members stay'}],'_ab_last':{}},"
    "'emitted_at':1}}",
    /* escapes of every kind in values; unicode raw and escaped; surrogate pairs */
    "{'type':'RECORD','record':{'stream':'customers','data':{'s':'q\\'d \\\\ \\/ \\b\\f\\n\\r\\t',"
    "'u':'\\u00e9t\\u00E9 \\ud83d\\ude00 ação 日本 😀','k':'\\'}{][,:'},'emitted_at':1}}",
    /* numbers: big, negative, exponents, decimals kept as written */
    "{'type':'RECORD','record':{'stream':'customers','data':{'big':123456789012345678901234567890,"
    "'neg':-0.000001,'e':1E+300,'f':-2.50e-7,'z':0,'dec':100.10},'emitted_at':1}}",
    /* nested objects and arrays, empty ones, literals */
    "{'type':'RECORD','record':{'stream':'customers','data':{'o':{'a':{'b':{'c':[[],{},[{}]]}}},"
    "'t':true,'f':false,'n':null,'arr':[null,true,'x',1.5]},'emitted_at':1}}",
    /* whitespace everywhere outside strings, and inside strings */
    "{ 'type' : 'RECORD' , 'record' : { 'stream' : 'customers' , 'data' : { 'a' : [ 1 , 2 ] ,"
    "\t'_ab_x' : 1 , 'b' : { 'c' : ' spaced  out ' } , 'd' : 3 } , 'emitted_at' : 1 } }",
    /* data before stream, record before type; envelope members after data */
    "{'record':{'data':{'brand':null,'id':'b'},'stream':'customers','namespace':'ns'},"
    "'type':'RECORD','x':{'data':{'not':'this one'}}}",
    /* brand absent, so the default is appended */
    "{'type':'RECORD','record':{'stream':'customers','data':{'id':'c','_ab_cdc_deleted_at':null}}}",
    /* brand present */
    "{'type':'RECORD','record':{'stream':'customers','data':{'brand':'own','id':'d'}}}",
    /* an escaped member name (an _ab_ member in disguise): the tree path decides */
    "{'type':'RECORD','record':{'stream':'customers','data':{'\\u005fab_x':1,'id':'e',"
    "'n\\u00e4me':'x'}}}",
    /* data reached through an escaped name: the tree path decides */
    "{'type':'RECORD','record':{'stream':'customers','d\\u0061ta':{'_ab_x':1,'id':'f'}}}",
    /* only _ab_ members; empty data */
    "{'type':'RECORD','record':{'stream':'customers','data':{'_ab_a':1,'_airbyte_b':2}}}",
    "{'type':'RECORD','record':{'stream':'customers','data':{}}}",
    /* sent as they came (no top-level _ab_ member, brand set): escapes, unicode,
     * big numbers, nested objects and _ab_ members below the top level */
    "{'type':'RECORD','record':{'stream':'customers','data':{'brand':'b','s':'q\\'d \\\\ "
    "\\u00e9 ação 😀 \\ud83d\\ude00','big':-123456789012345678901234567890.5e-3,"
    "'o':{'_ab_nested':{'_airbyte_x':[1,{}]},'a':[[],{}]}},'emitted_at':1}}",
    "{'type':'RECORD','record':{'emitted_at':1,'data':{'n\\u00e4me':'escaped name',"
    "'brand':'b','_a':1},'stream':'customers'}}",
    /* the same, but with whitespace inside data: compacted on the way */
    "{'type':'RECORD','record':{'stream':'customers','data':{'brand':'b', 'x':[1, 2]}}}",
    /* whitespace only outside data: data itself is compact */
    "{ 'type' : 'RECORD' , 'record' : { 'stream' : 'customers' , 'data' : {'brand':'b','y':"
    "{'z':' a b '}} } }",
    /* members named like the envelope inside data */
    "{'type':'RECORD','record':{'stream':'customers','data':{'record':{'data':1},'data':'d',"
    "'_ab_':'exactly the prefix','_a':'not airbyte','_airbyte':'not airbyte either'}}}",
};

static size_t verbatim_seen;

static bool ws_outside_strings(const char *p, size_t n)
{
    bool in_str = false;
    size_t i;

    for (i = 0; i < n; i++) {
        if (in_str) {
            if (p[i] == '\\') {
                i++;
            } else if (p[i] == '"') {
                in_str = false;
            }
        } else if (p[i] == '"') {
            in_str = true;
        } else if (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
            return true;
        }
    }
    return false;
}

/* The driver's path: line parsed into an arena, data found by its span,
 * written by ab_mapping_write_span(): the same values as the tree path
 * wrote (tree), the same bytes as ab_mapping_write_text() (bytes) unless a
 * member name holds an escape, the data's own bytes when sent verbatim, and
 * the same bytes again for the same input. */
static void check_span_path(const struct ab_mapping *m, const char *line, const char *brand,
                            const struct ab_buf *tree, const struct ab_buf *bytes)
{
    struct ab_error err;
    struct ab_json_arena *arena;
    struct ab_buf out;
    struct ab_buf again;
    yajl_val root;
    yajl_val data;
    yajl_val a;
    yajl_val b;
    size_t off = 0;
    size_t len = 0;
    bool compact = false;
    bool verbatim = false;
    bool verbatim2 = false;
    bool found;
    int round;

    ab_error_init(&err);
    arena = ab_json_arena_new(&err);
    assert_non_null(arena);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    ab_buf_init(&again, AB_BUF_UNBOUNDED);
    for (round = 0; round < 2; round++) {
        struct ab_buf *o = round ? &again : &out;
        bool *vb = round ? &verbatim2 : &verbatim;

        ab_json_arena_reset(arena);
        root = ab_json_parse_arena(arena, line, strlen(line), &err);
        assert_non_null(root);
        data = ab_json_get(ab_json_get(root, "record"), "data");
        if (!data) {
            data = ab_json_get(ab_json_get(root, "record"), "d\x61ta");
        }
        found = ab_json_arena_span(arena, data, &off, &len, &compact);
        if (data->u.object.len == 0) {
            assert_false(found); /* {} is a shared node */
            assert_int_equal(
                ab_mapping_write_span(m, data, NULL, 0, false, "brand", brand, o, vb, &err), AB_OK);
            continue;
        }
        assert_true(found);
        /* the span is the data object: it parses to the same value */
        a = ab_json_parse(line + off, len, &err);
        assert_non_null(a);
        assert_true(json_equal(a, data));
        ab_json_free(a);
        assert_int_equal(compact, !ws_outside_strings(line + off, len));
        assert_int_equal(
            ab_mapping_write_span(m, data, line + off, len, compact, "brand", brand, o, vb, &err),
            AB_OK);
    }
    assert_int_equal(verbatim, verbatim2);
    assert_int_equal(out.len, again.len);
    assert_memory_equal(out.data, again.data, out.len);
    if (verbatim) {
        verbatim_seen++;
        assert_true(compact && ab_mapping_verbatim(m, data, "brand", brand));
        assert_int_equal(out.len, len);
        assert_memory_equal(out.data, line + off, len);
    }
    if (!strstr(line, "\\u005f") && !strstr(line, "n\\u00e4me")) {
        /* no escaped member name: the very bytes of the copying path */
        assert_int_equal(out.len, bytes->len);
        assert_memory_equal(out.data, bytes->data, out.len);
    }
    a = ab_json_parse(tree->data, tree->len, &err);
    b = ab_json_parse(out.data, out.len, &err);
    assert_non_null(a);
    if (!b) {
        fail_msg("span path wrote invalid JSON for %s: %s (%s)", line, out.data, err.message);
    }
    if (!json_equal(a, b)) {
        fail_msg("values differ for %s:\n tree  %s\n span  %s", line, tree->data, out.data);
    }
    ab_json_free(a);
    ab_json_free(b);
    ab_buf_release(&out);
    ab_buf_release(&again);
    ab_json_arena_free(arena);
}

static void check_line_path(const char *sq, const char *brand)
{
    char *line = sq_text(sq);
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    yajl_val root;
    yajl_val data;
    struct ab_buf tree;
    struct ab_buf bytes;
    struct ab_buf again;
    yajl_val a;
    yajl_val b;
    const char *text;
    size_t text_len;

    memset(&maps, 0, sizeof(maps));
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&maps, NULL, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "customers", NULL, objects, &err);
    assert_non_null(m);
    root = ab_json_parse(line, strlen(line), &err);
    if (!root) {
        fail_msg("%s: %s", line, err.message);
    }
    data = ab_json_get(ab_json_get(root, "record"), "data");
    if (!data) {
        data = ab_json_get(ab_json_get(root, "record"), "d\x61ta");
    }
    assert_non_null(data);
    ab_buf_init(&tree, AB_BUF_UNBOUNDED);
    ab_buf_init(&bytes, AB_BUF_UNBOUNDED);
    ab_buf_init(&again, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_mapping_write(m, data, "brand", brand, &tree, &err), AB_OK);
    text = ab_record_data_text(line, strlen(line), &text_len);
    assert_true(text || strstr(line, "d\\u0061ta"));
    assert_int_equal(ab_mapping_write_text(m, data, text, text_len, "brand", brand, &bytes, &err),
                     AB_OK);
    assert_int_equal(ab_mapping_write_text(m, data, text, text_len, "brand", brand, &again, &err),
                     AB_OK);
    /* the same input, the same bytes */
    assert_int_equal(bytes.len, again.len);
    assert_memory_equal(bytes.data, again.data, bytes.len);
    /* the same JSON values as parse and serialise */
    a = ab_json_parse(tree.data, tree.len, &err);
    assert_non_null(a);
    b = ab_json_parse(bytes.data, bytes.len, &err);
    if (!b) {
        fail_msg("byte path wrote invalid JSON for %s: %s (%s)", line, bytes.data, err.message);
    }
    if (!json_equal(a, b)) {
        fail_msg("values differ for %s:\n tree  %s\n bytes %s", line, tree.data, bytes.data);
    }
    /* compact: no whitespace outside strings, as the tree path writes */
    if (!strstr(line, "spaced")) {
        assert_null(strstr(bytes.data, ": "));
    } else {
        assert_int_equal(bytes.len, tree.len);
    }
    ab_json_free(a);
    check_span_path(m, line, brand, &tree, &bytes);
    ab_json_free(b);
    ab_json_free(root);
    ab_buf_release(&tree);
    ab_buf_release(&bytes);
    ab_buf_release(&again);
    ab_mappings_release(&maps);
    free(line);
}

static void test_write_line_same_values(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
        check_line_path(tricky[i], NULL);
        check_line_path(tricky[i], "dflt");
    }
    /* sent as they came: 'brand present' and the three compact brand 'b'
     * lines, with and without a default brand; more without one */
    assert_true(verbatim_seen >= 8);
}

/* The byte path is taken: escapes come through as they were written. */
static void test_write_line_keeps_input_bytes(void **state)
{
    char *line = sq_text("{'type':'RECORD','record':{'stream':'customers','data':{"
                         "'_ab_a':1,'u':'\\u00e9','n':1.50,'_ab_b':2}}}");
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    yajl_val root;
    struct ab_buf out;
    const char *text;
    size_t text_len;

    (void)state;
    memset(&maps, 0, sizeof(maps));
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&maps, NULL, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "customers", NULL, objects, &err);
    root = ab_json_parse(line, strlen(line), &err);
    assert_non_null(root);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    text = ab_record_data_text(line, strlen(line), &text_len);
    assert_non_null(text);
    /* the exact text of data */
    assert_int_equal(text_len, strlen("{'_ab_a':1,'u':'\\u00e9','n':1.50,'_ab_b':2}"));
    assert_int_equal(ab_mapping_write_text(m, ab_json_get(ab_json_get(root, "record"), "data"),
                                           text, text_len, NULL, NULL, &out, &err),
                     AB_OK);
    assert_string_equal(out.data, "{\"u\":\"\\u00e9\",\"n\":1.50}");
    ab_buf_release(&out);
    ab_json_free(root);
    ab_mappings_release(&maps);
    free(line);
}

/* ---- lazy data ---------------------------------------------------------- */

/* Lines that lazy reading must leave to the tree path, or that fail: the
 * outcome (tree, content error, hard error and their messages) must be the
 * same with and without it. ('-quoted; bytes as written.) */
static const char *const lazy_edges[] = {
    /* duplicates: top level, nested, in an array's object, after unescaping */
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1,'b':2,'a':3}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'o':{'x':1,'y':{'x':2},'x':3}}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'l':[{'x':1},{'x':1,'x':2}]}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1,'\\u0061':2}}}",
    /* the same names in sibling objects are no duplicates */
    "{'type':'RECORD','record':{'stream':'s','data':{'o':{'x':1},'p':{'x':1},'x':[{'x':1},"
    "{'x':2}]}}}",
    /* content errors: bad UTF-8 (raw), escaped NUL, lone surrogates, range */
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'x\xff'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'\xed\xa0\x80'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a\xc0\xaf':1}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'\\u0000'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'\\ud800x'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'\\udc00'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1e999}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':-1e-999,'b':1.5E3}}}",
    /* syntax errors inside data */
    "{'type':'RECORD','record':{'stream':'s','data':{'a':01}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1,}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':[1,]}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a' 1}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':tru}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'\\x'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'tab\there'}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1.}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':-}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':[1}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':{'b':1]}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{1:2}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1}",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':'open",
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1}}} x",
    /* plain, with every kind of value and whitespace */
    "{'type':'RECORD','record':{'stream':'s','data':{ 'a' : [ 1 , -2.5 , 0 , true , false , "
    "null , 'x' , { } , [ ] ] , 'b':{'c':{'d':'\\n\\t\\\\\\/\\'é😀'}} } ,'emitted_at':1}}",
    /* not record.data: elsewhere, or not an object */
    "{'type':'RECORD','data':{'a':1},'record':{'stream':'s','x':{'data':{'a':1}}}}",
    "{'type':'RECORD','record':{'stream':'s','data':[{'a':1}]}}",
    "[{'record':{'data':{'a':1}}}]",
    "{'type':'STATE','state':{'type':'STREAM','stream':{'stream_state':{'data':{'a':1}}}}}",
    "{'type':'RECORD','record':{'stream':'s','data':{}}}",
    /* twice data in record: both read, the duplicate said */
    "{'type':'RECORD','record':{'stream':'s','data':{'a':1},'data':{'b':2}}}",
};

/* Parses line with and without lazy data and checks they agree: the same
 * outcome and errors; lazily read data has the tree's members (names, and
 * values whose text parses to the tree's values), the same span, and
 * ab_mapping_verbatim_members() says what ab_mapping_verbatim() says.
 * Returns whether data was read lazily. */
static bool check_lazy_line(const struct ab_mapping *m, const char *line, size_t len)
{
    struct ab_json_arena *lazy;
    struct ab_json_arena *tree;
    struct ab_error lc, le, tc, te;
    yajl_val lv;
    yajl_val tv;
    yajl_val ld;
    yajl_val td;
    const struct ab_json_member *mem = NULL;
    size_t n = 0;
    size_t i;
    bool read_lazily;

    ab_error_init(&le);
    ab_error_init(&te);
    lazy = ab_json_arena_new(&le);
    tree = ab_json_arena_new(&te);
    assert_non_null(lazy);
    assert_non_null(tree);
    ab_json_arena_set_lazy(lazy, true);
    lv = ab_json_parse_ex(lazy, line, len, true, &lc, &le);
    tv = ab_json_parse_ex(tree, line, len, true, &tc, &te);
    if (!lv || !tv) {
        if (lv || tv) {
            fail_msg("lazy %s, tree %s for %.*s", lv ? "parsed" : le.message,
                     tv ? "parsed" : te.message, (int)len, line);
        }
        assert_int_equal(le.code, te.code);
        assert_string_equal(le.message, te.message);
        ab_json_arena_free(lazy);
        ab_json_arena_free(tree);
        return false;
    }
    assert_int_equal(lc.code, tc.code);
    if (tc.code != AB_OK) {
        assert_string_equal(lc.message, tc.message);
    }
    ld = ab_json_get(ab_json_get(lv, "record"), "data");
    td = ab_json_get(ab_json_get(tv, "record"), "data");
    read_lazily = ab_json_arena_lazy(lazy, ld, &mem, &n);
    if (!read_lazily) {
        /* a tree as without lazy data */
        if (!json_equal(lv, tv)) {
            fail_msg("trees differ for %.*s", (int)len, line);
        }
    } else {
        size_t loff, llen, toff, tlen;
        bool lcomp, tcomp;
        const char *text;

        assert_int_equal(tc.code, AB_OK);
        assert_non_null(td);
        assert_int_equal(td->type, yajl_t_object);
        assert_int_equal(ld->type, yajl_t_object);
        assert_int_equal(ld->u.object.len, 0);
        assert_true(ab_json_arena_span(lazy, ld, &loff, &llen, &lcomp));
        assert_true(ab_json_arena_span(tree, td, &toff, &tlen, &tcomp));
        assert_int_equal(loff, toff);
        assert_int_equal(llen, tlen);
        assert_int_equal(lcomp, tcomp);
        text = line + loff;
        assert_int_equal(n, td->u.object.len);
        for (i = 0; i < n; i++) {
            struct ab_error e;
            yajl_val v;

            ab_error_init(&e);
            assert_int_equal(mem[i].name_len, strlen(td->u.object.keys[i]));
            assert_memory_equal(text + mem[i].name_off, td->u.object.keys[i], mem[i].name_len);
            v = ab_json_parse(text + mem[i].val_off, mem[i].val_len, &e);
            if (!v) {
                fail_msg("member %zu of %.*s: %s", i, (int)len, line, e.message);
            }
            assert_true(json_equal(v, td->u.object.values[i]));
            /* escapes lie only in strings: a backslash anywhere says one */
            assert_int_equal(mem[i].escaped,
                             memchr(text + mem[i].val_off, '\\', mem[i].val_len) != NULL);
            ab_json_free(v);
        }
        /* the rest of the line is the tree's too */
        assert_true(json_equal(ab_json_get(lv, "type"), ab_json_get(tv, "type")));
        assert_true(json_equal(ab_json_get(ab_json_get(lv, "record"), "stream"),
                               ab_json_get(ab_json_get(tv, "record"), "stream")));
        assert_true(json_equal(ab_json_get(ab_json_get(lv, "record"), "emitted_at"),
                               ab_json_get(ab_json_get(tv, "record"), "emitted_at")));
        if (m) {
            assert_int_equal(ab_mapping_verbatim_members(m, text, mem, n, "brand", NULL),
                             ab_mapping_verbatim(m, td, "brand", NULL));
            assert_int_equal(ab_mapping_verbatim_members(m, text, mem, n, "brand", "dflt"),
                             ab_mapping_verbatim(m, td, "brand", "dflt"));
        }
    }
    ab_json_arena_free(lazy);
    ab_json_arena_free(tree);
    return read_lazily;
}

static void test_lazy_data_same_as_tree(void **state)
{
    struct ab_mappings maps;
    const struct ab_mapping *m;
    struct ab_error err;
    size_t lazily = 0;
    size_t i;

    (void)state;
    memset(&maps, 0, sizeof(maps));
    ab_error_init(&err);
    assert_int_equal(ab_mappings_parse(&maps, NULL, objects, &err), AB_OK);
    m = ab_mappings_resolve(&maps, "customers", NULL, objects, &err);
    assert_non_null(m);
    for (i = 0; i < sizeof(tricky) / sizeof(tricky[0]); i++) {
        char *line = sq_text(tricky[i]);
        size_t k;

        lazily += check_lazy_line(m, line, strlen(line));
        /* every prefix: cut lines fail the same way */
        for (k = 0; k < strlen(line); k++) {
            (void)check_lazy_line(m, line, k);
        }
        free(line);
    }
    /* escapes other than \u, unicode, nested _ab_ members, spacing, brands */
    assert_true(lazily >= 10);
    lazily = 0;
    for (i = 0; i < sizeof(lazy_edges) / sizeof(lazy_edges[0]); i++) {
        char *line = sq_text(lazy_edges[i]);

        lazily += check_lazy_line(m, line, strlen(line));
        free(line);
    }
    /* the sibling names and the plain line (the first data of the last is
     * read lazily, then marked invalid as a duplicate, as a tree would be) */
    assert_int_equal(lazily, 2);
    ab_mappings_release(&maps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors_name_the_index),
        cmocka_unit_test(test_parse_null_and_absent),
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_write_table),
        cmocka_unit_test(test_write_line_same_values),
        cmocka_unit_test(test_write_line_keeps_input_bytes),
        cmocka_unit_test(test_lazy_data_same_as_tree),
        cmocka_unit_test(test_write_errors_leave_buffer_unchanged),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_annotate_errors),
        cmocka_unit_test(test_any_object_when_list_is_null),
        cmocka_unit_test(test_transforms),
        cmocka_unit_test(test_transform_errors),
        cmocka_unit_test(test_object_and_index),
        cmocka_unit_test(test_dotted_targets),
        cmocka_unit_test(test_dotted_target_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
