#!/bin/sh
# Project lint: formatting, line width, the lib/ boundary and numbered
# log messages. Exits non-zero on the first class of problem found.
set -u
cd "$(dirname "$0")/.."
status=0
files=$(ls lib/*.c lib/*.h mod_dme/*.c mod_dme/*.h t/unit/*.c t/unit/*.h \
        t/fuzz/*.c 2>/dev/null)

for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "lint: $f is not clang-formatted (run clang-format -i $f)"
        status=1
    fi
done

wide=$(awk 'length($0) > 100 { print FILENAME ":" FNR }' $files)
if [ -n "$wide" ]; then
    echo "lint: lines over 100 columns:"; echo "$wide"; status=1
fi

leak=$(grep -lE '#include *[<"](httpd|http_[a-z_]+|ap_[a-z_]+|mod_[a-z_]+)\.h' \
       lib/*.c lib/*.h 2>/dev/null)
if [ -n "$leak" ]; then
    echo "lint: httpd headers under lib/:"; echo "$leak"; status=1
fi

# Every log call carries DMELOGNO(n) with a number used nowhere else;
# a call that only forwards an already numbered core message says so.
perl -0777 -ne '
    while (/\b(ap_log_r?error|ap_log_cerror|dme_log)\s*\((.*?)\);/gs) {
        my ($fn, $args) = ($1, $2);
        my $line = 1 + (substr($_, 0, $-[0]) =~ tr/\n//);
        my $before = substr($_, 0, $-[0]);
        next if $before =~ /lint: forwards[^\n]*\n[^\n]*\z/;
        next if $fn eq "dme_log" && $args =~ /^\s*const dme_logger_t/;
        if ($args =~ /DMELOGNO\(\s*(\d{5})\s*\)/) {
            print "DUP $ARGV:$line $1\n" if $seen{$1}++;
        } else {
            print "NONUM $ARGV:$line\n";
        }
    }
' lib/*.c mod_dme/*.c > /tmp/dme-lint.$$ || true
if [ -s /tmp/dme-lint.$$ ]; then
    echo "lint: log calls without a unique DMELOGNO:"; cat /tmp/dme-lint.$$
    status=1
fi
rm -f /tmp/dme-lint.$$
[ $status = 0 ] && echo "lint: ok"
exit $status
