/* The XML wire format of the client API (namespace urn:dme:1): turns
 * engine results into response documents. docs/protocol.md describes
 * every element. */
#ifndef DME_PROTO_H
#define DME_PROTO_H

#include "dme_engine.h"

/* <sync folder= key= source= more=> with add, change and delete
 * children. */
const char *dme_proto_sync(apr_size_t *len, const char *folder, apr_int64_t key,
                           const dme_sync_result_t *res, apr_pool_t *p);

/* <enrolled><client id=.../></enrolled> */
const char *dme_proto_enrolled(apr_size_t *len, const char *client_id,
                               apr_pool_t *p);

/* ISO 8601 UTC, seconds precision: 2026-12-03T17:04:05Z */
const char *dme_proto_time(apr_time_t t, apr_pool_t *p);

#endif
