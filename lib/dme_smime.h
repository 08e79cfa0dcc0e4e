/* S/MIME certificate harvest: which signer certificates of a mail may be
 * kept for encrypting to its sender later.
 *
 * dme_smime_inspect() finds every signed part of a mail (through
 * dme_mime), verifies each signer on its own and says for each whether its
 * certificate is acceptable, or why not. Whether the sender is a user of
 * the system, and whether the certificate is already stored, is for the
 * caller to decide with its database.
 *
 * lib/dme_smime.c is the home of OpenSSL's CMS and X.509 use, as
 * lib/dme_crypto.c is of its digests and ciphers; nothing else of the core
 * sees an OpenSSL type.
 */
#ifndef DME_SMIME_H
#define DME_SMIME_H

#include "dme.h"

/* Signers looked at per signed part; more is abuse, not mail. */
#define DME_SMIME_SIGNERS_MAX 16

/* Trust anchors for the signers' chains. */
typedef struct dme_smime_trust_t dme_smime_trust_t;

/* Load the trust anchors from ca_file: PEM certificates (a bundle), or
 * else one DER certificate. Every certificate in the file is an anchor,
 * also one that is not self-signed. With ca_file NULL, OpenSSL's default
 * locations are used (the system bundle).
 * The store is freed when p is cleared; until then any number of threads
 * may use it at once.
 * @return APR_EINVAL if the file holds no certificate; an APR error from
 *         the OS if it cannot be read; APR_EGENERAL if OpenSSL fails. */
apr_status_t dme_smime_trust_load(dme_smime_trust_t **t, const char *ca_file,
                                  apr_pool_t *p);

/* A certificate as the harvest stores and shows it. */
typedef struct dme_cert_t {
    const unsigned char *der;
    apr_size_t der_len;
    char fingerprint[65]; /* SHA-256 of der, lowercase hex */
    const char *issuer;   /* RFC 2253, non-ASCII escaped */
    const char *serial;   /* lowercase hex, "-" first if negative */
    apr_time_t not_before, not_after;
    /* const char *: the rfc822Name entries of subjectAltName, then the
     * subject's emailAddress entries; ASCII lowercased, duplicates
     * dropped, and entries that are no plain address (no "@", controls,
     * spaces, non-ASCII) left out. May be empty. */
    apr_array_header_t *addresses;
    /* keyUsage bits set, comma-separated, in the order of RFC 5280:
     * digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment,
     * keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly;
     * "" when the extension is absent. */
    const char *key_usage;
    /* 1 if mail can be encrypted to it: an RSA key (not an RSA-PSS-only
     * key) with keyEncipherment, or an EC key with keyAgreement, or either
     * with no keyUsage at all; and no extendedKeyUsage, or one that holds
     * emailProtection. */
    int can_encrypt;
} dme_cert_t;

/* Read a stored certificate (DER) into *c, everything in p.
 * @return APR_EINVAL if der is not exactly one X.509 certificate;
 *         APR_EGENERAL if OpenSSL fails otherwise. */
apr_status_t dme_cert_parse(dme_cert_t **c, const unsigned char *der,
                            apr_size_t len, apr_pool_t *p);

typedef enum {
    DME_SMIME_NO_SIGNATURE,    /* the mail has no signed part at all */
    DME_SMIME_BAD_SIGNATURE,   /* unreadable, or does not match the content */
    DME_SMIME_NO_SIGNER_CERT,  /* the signer's certificate is not enclosed */
    DME_SMIME_UNTRUSTED,       /* no chain to an anchor, wrong purpose, CA */
    DME_SMIME_SENDER_MISMATCH, /* no address of it is the sender's */
    DME_SMIME_EXPIRED,         /* past notAfter at the time given */
    DME_SMIME_WEAK,            /* MD5 or SHA-1 in the signature or cert */
    DME_SMIME_NO_ADDRESS,      /* the certificate names no e-mail address */
    DME_SMIME_ACCEPTABLE       /* may be stored if the sender is external */
} dme_smime_reason_e;

/* "no-signature", "bad-signature", "no-signer-cert", "untrusted",
 * "sender-mismatch", "expired", "weak", "no-address", "acceptable";
 * "unknown" for any other value. */
const char *dme_smime_reason_name(dme_smime_reason_e r);

typedef struct dme_smime_verdict_t {
    dme_smime_reason_e reason;
    const dme_cert_t *cert; /* the signer's certificate; NULL if not found */
    const char *detail;     /* short technical cause, never NULL */
} dme_smime_verdict_t;

/* Judge every signer of every signed part of the mail msg[0..len): the
 * whole message as received, LF or CRLF line ends as they are; a first
 * line "From " (mbox) is skipped. sender is the bare address of its From
 * header (see dme_mime_sender_address()); NULL when there is none, which
 * makes every certificate a sender mismatch.
 *
 * A signer's certificate is the one the signer info names (issuer and
 * serial, or key identifier) among the certificates the signature carries;
 * the others there only help build its chain. Each signer is then judged
 * in this order, the first failing test giving its reason:
 *   no-signer-cert  its certificate is not enclosed;
 *   bad-signature   the signature does not verify over the signed bytes
 *                   exactly as received, or the part is unreadable;
 *   untrusted       no chain at time now to an anchor of t for S/MIME
 *                   signing, or the certificate is a CA's;
 *   expired         the chain holds but the certificate's notAfter is
 *                   before now;
 *   weak            the CMS digest or signature uses MD5 or SHA-1, or the
 *                   certificate itself is signed with one of them;
 *   no-address      the certificate names no e-mail address;
 *   sender-mismatch none of its addresses equals sender, ignoring ASCII
 *                   case;
 *   acceptable      otherwise.
 * Revocation is not checked here.
 *
 * *verdicts is an array of dme_smime_verdict_t: one per signer, in the
 * order of the parts (outer before nested) and of the signers in each;
 * an unreadable signed-data part gives one bad-signature verdict without
 * a certificate. When there is nothing to judge - no signed part, or only
 * certs-only or unreadable parts not labelled signed-data - it holds one
 * no-signature verdict. Each verdict other than acceptable and
 * no-signature is logged at info to lg (may be NULL), with the sender
 * only as a dme_user_tag() hash.
 *
 * Needs dme_mime_init(). Safe from several threads at once. Never fails
 * on any input: APR_SUCCESS (also when the mail cannot be parsed: one
 * no-signature verdict); APR_EINVAL if verdicts, msg, t or p is NULL. */
apr_status_t dme_smime_inspect(apr_array_header_t **verdicts, const char *msg,
                               apr_size_t len, const char *sender,
                               const dme_smime_trust_t *t, apr_time_t now,
                               const dme_logger_t *lg, apr_pool_t *p);

#endif /* DME_SMIME_H */
