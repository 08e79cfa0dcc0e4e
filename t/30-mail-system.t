# The mail system: connections are reused, an outage answers 503 quickly
# with Retry-After and is logged once, and service comes back with it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time);
use DmeTest;

plan tests => 12;

sub dovecot_logins {
    my $log = services() . '/dovecot/dovecot.log';
    open my $fh, '<', $log or return 0;
    return scalar grep { /imap-login: Login: user=<alice\*dmemaster>/ } <$fh>;
}

my ($res, $client) = enrol('alice', 'alice-secret');
is($res->code, 201, 'enrolled');
$res = sync_req(client => $client);
is($res->code, 200, 'imported');
my $key = parse_sync($res->decoded_content)->{key};

# Logged-in connections are kept per worker process: ten more syncs log
# in at most once per process (the test server runs two).
my $before = dovecot_logins();
for (1 .. 10) {
    $res = sync_req(client => $client, key => $key);
    $key = parse_sync($res->decoded_content)->{key};
}
is($res->code, 200, 'ten syncs in a row');
my $logins = dovecot_logins() - $before;
cmp_ok($logins, '<=', 2, "ten syncs needed $logins new logins");

# Outage: 503 within the configured timeout (DMEMailTimeout 2) and a
# Retry-After; the log says so once per process, not per request.
my $down_lines = () = error_log_lines(qr/DME10012/);
stop_dovecot();
my @codes;
my $slowest = 0;
my $retry;
for (1 .. 4) {
    my $t0 = time;
    $res = sync_req(client => $client, key => $key);
    my $dt = time - $t0;
    $slowest = $dt if $dt > $slowest;
    push @codes, $res->code;
    $retry = $res->header('Retry-After');
}
is_deeply(\@codes, [503, 503, 503, 503], 'mail system down: 503');
cmp_ok($slowest, '<', 3, sprintf('answered within %.2f s', $slowest));
is($retry, '5', 'Retry-After from DMERetryAfter');
like($res->decoded_content, qr/code="mail-system-unavailable"/, 'says why');
my $new_lines = (() = error_log_lines(qr/DME10012/)) - $down_lines;
is($new_lines, 1, 'the outage is logged once, not per request');

# Back again: the same key works, nothing was lost.
start_dovecot();
$res = sync_req(client => $client, key => $key);
is($res->code, 200, 'recovers when the mail system is back');
is(parse_sync($res->decoded_content)->{key}, $key, 'with the same key (nothing changed)');
sync_req(client => $client, key => $key + $_) for 1 .. 3;
is(scalar(error_log_lines(qr/DME10013/)), 1, 'and logs the recovery once');
