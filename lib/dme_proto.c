/* Response documents of the client API. */
#include <apr_strings.h>

#include "dme_proto.h"
#include "dme_xml.h"

const char *dme_proto_time(apr_time_t t, apr_pool_t *p)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec);
}

static void write_add(dme_xml_w_t *w, apr_uint32_t uidvalidity,
                      const dme_sync_add_t *a, apr_pool_t *p)
{
    const dme_mime_summary_t *s = a->summary;
    const dme_note_t *n = a->note;

    dme_xml_start(w, "add");
    dme_xml_attr(w, "ref", dme_note_ref(uidvalidity, n->uid, p));
    dme_xml_attr(w, "checksum", n->sum);
    dme_xml_elem(w, "from", s->from);
    dme_xml_elem(w, "to", s->to);
    dme_xml_elem(w, "subject", s->subject);
    dme_xml_elem(w, "date", dme_proto_time(s->date ? s->date : n->date, p));
    dme_xml_elem(w, "received", dme_proto_time(n->date, p));
    dme_xml_elem(w, "flags", n->flags ? n->flags : "");
    dme_xml_elem(w, "size", apr_psprintf(p, "%" APR_UINT64_T_FMT, n->size));
    dme_xml_elem(w, "preview", s->preview);
    dme_xml_elem(w, "smime", s->smime);
    dme_xml_elem(w, "attachments", s->has_attachments ? "true" : "false");
    dme_xml_end(w);
}

const char *dme_proto_sync(apr_size_t *len, const char *folder, apr_int64_t key,
                           const dme_sync_result_t *res, apr_pool_t *p)
{
    const dme_delta_t *d = res->delta;
    dme_xml_w_t *w = dme_xml_writer_create("sync", p);
    int i;

    dme_xml_attr(w, "folder", folder);
    dme_xml_attr(w, "key", apr_psprintf(p, "%" APR_INT64_T_FMT, key));
    dme_xml_attr(w, "source", res->source);
    dme_xml_attr(w, "more", d->more ? "true" : "false");
    for (i = 0; i < d->deletes->nelts; i++) {
        apr_uint32_t uid = APR_ARRAY_IDX(d->deletes, i, apr_uint32_t);

        dme_xml_start(w, "delete");
        dme_xml_attr(w, "ref", dme_note_ref(d->deletes_uidvalidity, uid, p));
        dme_xml_end(w);
    }
    for (i = 0; i < d->changes->nelts; i++) {
        const dme_note_t *n = &APR_ARRAY_IDX(d->changes, i, dme_note_t);

        dme_xml_start(w, "change");
        dme_xml_attr(w, "ref", dme_note_ref(res->uidvalidity, n->uid, p));
        dme_xml_attr(w, "checksum", n->sum);
        dme_xml_elem(w, "flags", n->flags ? n->flags : "");
        dme_xml_end(w);
    }
    for (i = 0; i < res->adds->nelts; i++) {
        write_add(w, res->uidvalidity,
                  &APR_ARRAY_IDX(res->adds, i, dme_sync_add_t), p);
    }
    return dme_xml_finish(w, len);
}

const char *dme_proto_enrolled(apr_size_t *len, const char *client_id,
                               apr_pool_t *p)
{
    dme_xml_w_t *w = dme_xml_writer_create("enrolled", p);

    dme_xml_start(w, "client");
    dme_xml_attr(w, "id", client_id);
    dme_xml_end(w);
    return dme_xml_finish(w, len);
}
