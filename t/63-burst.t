# A burst of change notes for one folder, spread over the server's
# processes, coalesces into few builds, never one per note; memcached
# going away is logged once, coming back once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(sleep);
use DmeTest;
use DmePush;

plan tests => 7;

fresh_workers();
my (undef, $client) = enrol('bob', 'bob-secret');
my $imap = imap_as('bob', 'bob-secret');
my $uid = append_mail($imap, 'INBOX', 'Burst start');
my $uv = $imap->uidvalidity('INBOX');
settle_builds();

# 1. Twenty notes at once, as fast as the server takes them.
my $c0 = counters();
my $note = qq({"user":"bob","event":"messageNew","folder":"INBOX",)
         . qq("imap-uidvalidity":$uv,"imap-uid":$uid});
my @codes = map { push_put($note)->code } 1 .. 20;
is_deeply([grep { $_ != 204 } @codes], [], 'every note answered 204');
settle_builds();
my $builds = counters()->{builds} - $c0->{builds};
ok($builds >= 1, 'the burst was built');
cmp_ok($builds, '<=', 6, "and coalesced: $builds builds for 20 notes");

# 2. memcached stops: every sync still answers, the outage is logged
# once; when it is back, once more.
my $down0 = () = error_log_lines(qr/DME10024/);
my $up0 = () = error_log_lines(qr/DME10025/);
my $res = sync_req(client => $client, user => 'bob', password => 'bob-secret');
my $key = parse_sync($res->decoded_content)->{key};
svc('memcached-stop', services());
my @st;
for (1 .. 6) {
    append_mail($imap, 'INBOX', "Down $_");
    $res = sync_req(client => $client, user => 'bob', password => 'bob-secret',
                    key => $key);
    push @st, $res->code;
    $key = parse_sync($res->decoded_content)->{key};
}
is_deeply(\@st, [(200) x 6], 'syncs answer while memcached is down');
is((() = error_log_lines(qr/DME10024/)) - $down0, 1,
   'the outage is logged once');
svc('memcached-start', services(), $ENV{DME_MC_PORT});
sleep 2.5; # libmemcached retries a failed server after a short pause
for (1 .. 6) {
    append_mail($imap, 'INBOX', "Up $_");
    $res = sync_req(client => $client, user => 'bob', password => 'bob-secret',
                    key => $key);
    $key = parse_sync($res->decoded_content)->{key};
    last if (() = error_log_lines(qr/DME10025/)) > $up0;
    sleep 0.5;
}
is($res->code, 200, 'and after it is back');
is((() = error_log_lines(qr/DME10025/)) - $up0, 1,
   'the recovery is logged once');
$imap->logout;
