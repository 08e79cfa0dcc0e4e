#!/bin/sh
# Build the libFuzzer targets into t/fuzz/bin/, each straight from the lib/
# sources it exercises, with AddressSanitizer and UBSan.
# Run one:  t/fuzz/bin/fuzz_imap_parse -max_total_time=180 \
#               t/fuzz/crashes/imap t/fuzz/corpus/imap
# (the first directory collects new inputs; keep the seed corpus clean).
set -eu
cd "$(dirname "$0")/../.."

CC=${CC:-clang}
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined"
CFLAGS="$CFLAGS -fno-sanitize-recover=undefined -Wall -Wextra -std=gnu99"
APR_CFLAGS=$(pkg-config --cflags apr-1)
APR_LIBS=$(pkg-config --libs apr-1)

mkdir -p t/fuzz/bin

# build NAME LIB_SOURCES...: t/fuzz/NAME.c and the sources into bin/NAME
build() {
    name=$1
    shift
    echo "fuzz: $name"
    # shellcheck disable=SC2086
    $CC $CFLAGS -Ilib $APR_CFLAGS -o "t/fuzz/bin/$name" "t/fuzz/$name.c" \
        "$@" $APR_LIBS
}

build fuzz_imap_parse lib/dme_imap_parse.c
build fuzz_json_push lib/dme_json.c $(pkg-config --libs jansson)
build fuzz_smime lib/dme_smime.c lib/dme_mime.c lib/dme_crypto.c lib/dme_log.c \
    $(pkg-config --cflags --libs gmime-3.0 openssl)
