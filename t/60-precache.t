# Pre-caching end to end against real Dovecot push and real memcached:
# delivery -> push -> build -> long-poll wakes -> sync from the pre-cache.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time sleep);
use DmeTest;
use DmePush;

plan tests => 34;

my $imap = imap_as('alice', 'alice-secret');
my ($res, $client) = enrol('alice', 'alice-secret');
$res = sync_req(client => $client);
my $key = parse_sync($res->decoded_content)->{key};
while (parse_sync($res->decoded_content)->{more} eq 'true') {
    $res = sync_req(client => $client, key => $key);
    $key = parse_sync($res->decoded_content)->{key};
}
push_enable('alice');

sub sync_now {
    my $r = sync_req(client => $client, key => $key, type => 'push');
    my $s = parse_sync($r->decoded_content);
    $key = $s->{key} if $r->code == 200;
    return $s;
}

# 1. End to end. A long-poll waits; a delivery makes Dovecot push; the
# build completes; the long-poll returns; the sync is served from the
# pre-cache and holds exactly the new mail.
my $c0 = counters();
my $w = start_wait(client => $client);
sleep 0.5;
my $t_deliver = time;
deliver('alice', 'Pushed one', 'Secret body text alpha');
my $r = finish_wait($w);
is($r->{code}, 200, 'the long-poll answers');
like($r->{body}, qr/changed="true"/, 'and says something changed');
cmp_ok($r->{time} - $t_deliver, '<', 3, 'within seconds of the delivery');
ok(counters()->{builds} > $c0->{builds}, 'a build ran');
my $s = sync_now();
is($s->{source}, 'pre-cache', 'the sync is served from the pre-cache');
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['Pushed one'],
          'and holds exactly the new mail');
ok(counters()->{hits} > $c0->{hits}, 'counted as a hit');

# 2. The pre-cache is gone after the sync: the next sync is not a hit.
my $c1 = counters();
$s = sync_now();
isnt($s->{source}, 'pre-cache', 'after a sync the pre-cache is gone');
is(counters()->{hits}, $c1->{hits}, 'no second hit');

# 3. A mail arriving between the build and the sync is in the sync.
$c1 = counters();
deliver('alice', 'Pushed two');
ok(defined wait_for_counter('builds', $c1->{builds}), 'built');
append_mail($imap, 'INBOX', 'Appended after the build');
$s = sync_now();
is($s->{source}, 'pre-cache', 'served from the pre-cache');
is_deeply([sort map { $_->{subject} } @{$s->{adds}}],
          ['Appended after the build', 'Pushed two'],
          'with the mail that came after the build (newest-mail check)');

# 4. Within the maximum age (4 s here) a flag change made after the
# build is not seen (as designed); past it the merge finds it.
my $flagged = append_mail($imap, 'INBOX', 'To be flagged');
$s = sync_now(); # the client now holds it, unflagged
$c1 = counters();
deliver('alice', 'Pushed three');
ok(defined wait_for_counter('builds', $c1->{builds}), 'built');
$imap->select('INBOX');
$imap->set_flag('\\Flagged', $flagged) or die $imap->LastError;
$s = sync_now();
is($s->{source}, 'pre-cache', 'young pre-cache used');
is(scalar @{$s->{changes}}, 0, 'a flag change after the build is not seen');
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['Pushed three'],
          'only the new mail');

$c1 = counters();
deliver('alice', 'Pushed four');
ok(defined wait_for_counter('builds', $c1->{builds}), 'built');
$imap->unset_flag('\\Flagged', $flagged);
$imap->set_flag('\\Answered', $flagged) or die $imap->LastError;
sleep 5; # past DMEPrecacheMaxAge
$s = sync_now();
is($s->{source}, 'pre-cache', 'old pre-cache used');
ok(counters()->{merges} > $c1->{merges}, 'after a merge');
my ($chg) = grep { $_->{ref} =~ /:$flagged$/ } @{$s->{changes}};
ok($chg, 'the flag change is seen after the maximum age');
like($chg ? $chg->{flags} : '', qr/\\Answered/, 'with the flags of now');

# 5. An import never reads the pre-cache.
$c1 = counters();
deliver('alice', 'Pushed five');
ok(defined wait_for_counter('builds', $c1->{builds}), 'built');
my ($res2, $client2) = enrol('alice', 'alice-secret');
$res = sync_req(client => $client2);
is(parse_sync($res->decoded_content)->{source}, 'mail-system',
   'an import reads the mail system');
is(counters()->{hits}, $c1->{hits}, 'and takes no pre-cache');

# 6. No mail content in memcached: subjects, senders and bodies of the
# mails pushed above appear in no item.
my $items = memcached_dump();
ok(scalar(keys %$items) > 0, 'memcached holds items');
my @leaks = grep { $items->{$_} =~ /Pushed|pusher\@example|Secret body|Appended after/ }
            keys %$items;
is(scalar @leaks, 0, 'no subject, sender or body in any memcached value');
ok(!(grep { /\s/ || length > 250 } keys %$items), 'keys are safe');

# 7. Nothing changed since the last sync: one STATUS call answers.
$s = sync_now(); # takes the pre-cache of "Pushed five"
$c1 = counters();
$s = sync_now();
is($s->{source}, 'status', 'an unchanged folder is answered from STATUS');
ok(counters()->{status_hits} > $c1->{status_hits}, 'counted');

# 8. A newer long-poll of the same client ends the older one.
my $w1 = start_wait(client => $client);
sleep 0.7;
my $w2 = start_wait(client => $client);
my $r1 = finish_wait($w1);
like($r1->{body}, qr/superseded="true"/, 'the older long-poll is superseded');
my $r2 = finish_wait($w2);
like($r2->{body}, qr/heartbeat="(\d+)"/, 'the newer one proposes a heartbeat');
my ($hb) = $r2->{body} =~ /heartbeat="(\d+)"/;
ok($hb >= 2 && $hb <= 8, "heartbeat $hb within DMEHeartbeatMin/Max");

# 9. memcached stopped: syncs stay correct, from the mail system, fast.
svc('memcached-stop', services());
append_mail($imap, 'INBOX', 'While memcached is down');
my $t0 = time;
$s = sync_now();
my $dt = time - $t0;
is_deeply([map { $_->{subject} } @{$s->{adds}}], ['While memcached is down'],
          'memcached down: the sync is still right');
is($s->{source}, 'mail-system', 'served from the mail system');
svc('memcached-start', services(), $ENV{DME_MC_PORT});
diag sprintf('sync with memcached down took %.2f s', $dt);
$imap->logout;
