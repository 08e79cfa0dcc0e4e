#!/bin/sh
# Makes the test CA and signer certificates the S/MIME suites use, under
# DIR: ca.pem/ca.key, and for each NAME given as NAME=ADDRESS a key and a
# certificate NAME.pem/NAME.key for that address (in the SAN and the
# subject). anchors.pem is the CA plus, when the shared corpus is there,
# the CA of its real samples.
set -eu
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
    -days 30 -subj "/CN=mod_dme test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for spec in "$@"; do
    name=${spec%%=*}
    addr=${spec#*=}
    days=30
    bits=2048
    case $name in short*) days=1 ;; weak*) bits=1024 ;; esac
    openssl req -newkey "rsa:$bits" -nodes -keyout "$name.key" -out "$name.csr" \
        -subj "/CN=$name/emailAddress=$addr" 2>/dev/null
    printf '%s\n' "subjectAltName=email:$addr" \
        "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=emailProtection" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
        -CAcreateserial -days "$days" -sha256 -extfile "$name.ext" \
        -out "$name.pem" 2>/dev/null
done
cp ca.pem anchors.pem
corpus=${DME_SMIME_CORPUS:-$(dirname "$0")/../../shared/corpus/smime}
[ -f "$corpus/cc_TestCA.pem" ] && cat "$corpus/cc_TestCA.pem" >>anchors.pem
chmod 0644 ./*.pem
