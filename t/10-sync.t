# Sync against a real Dovecot: import, adds, changes, deletes, moves,
# repeated keys, ownership, downloads.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use DmeTest;

plan tests => 42;

my $imap = imap_as('alice', 'alice-secret');
my $folder = 'Sync' . $$;
$imap->create($folder) or die $imap->LastError;

# One mail a day at noon UTC, 0 to 20 days ago. The window is 14
# calendar days: mails of days 0..14 are in, 15..20 are out.
my %uid_of_day;
for my $d (0 .. 20) {
    $uid_of_day{$d} = append_mail($imap, $folder, "Day $d",
                                  date => internal_date($d));
}

my ($res, $client) = enrol('alice', 'alice-secret');
is($res->code, 201, 'enrol answers 201');
like($client, qr/^[a-z2-7]{20,}$/, 'enrol returns a client id');

$res = sync_req(client => $client, folder => $folder);
is($res->code, 200, 'import answers 200');
my $s = parse_sync($res->decoded_content);
my @subjects = sort map { $_->{subject} } @{$s->{adds}};
is_deeply(\@subjects, [sort map { "Day $_" } 0 .. 14],
          'import returns exactly the mails of the 14-day window');
is($s->{key}, '1', 'first key is 1');
is($s->{source}, 'mail-system', 'served from the mail system');
is($s->{more}, 'false', 'nothing more to page');
my ($add0) = grep { $_->{subject} eq 'Day 0' } @{$s->{adds}};
my $uid0 = $uid_of_day{0};
like($add0->{ref}, qr/^\d+:\Q$uid0\E$/, 'ref carries the uid');
is($add0->{from}, 'Test Sender <sender@example.org>', 'from decoded');
is($add0->{smime}, 'none', 'plain mail is not S/MIME');
like($add0->{preview}, qr/^Hello Alice, this is Day 0\.$/, 'preview text');

# A new mail comes back as one add with its subject and exact size.
my ($new_uid, $new_size) = append_mail($imap, $folder,
                                       "Grüße aus Köln");
$res = sync_req(client => $client, folder => $folder, key => 1);
$s = parse_sync($res->decoded_content);
is(scalar @{$s->{adds}}, 1, 'an appended mail is one add');
is($s->{adds}[0]{subject}, 'Grüße aus Köln', 'with its subject in UTF-8')
    or diag $res->decoded_content;
is($s->{adds}[0]{size}, $new_size, 'and its size in bytes');
is(scalar @{$s->{changes}} + scalar @{$s->{deletes}}, 0, 'nothing else');
is($s->{key}, '2', 'key advances');

# The same request again (the client lost the answer): identical bytes.
my $again = sync_req(client => $client, folder => $folder, key => 1);
is($again->code, 200, 'repeated key answers 200');
is($again->content, $res->content, 'repeated key returns the same answer');

# \Seen set elsewhere comes back as a change.
$imap->select($folder);
$imap->set_flag('\\Seen', $uid_of_day{3}) or die $imap->LastError;
$res = sync_req(client => $client, folder => $folder, key => 2);
$s = parse_sync($res->decoded_content);
is(scalar @{$s->{changes}}, 1, 'a flag set elsewhere is one change');
my $uid3 = $uid_of_day{3};
like($s->{changes}[0]{ref}, qr/:\Q$uid3\E$/, 'of that mail');
is($s->{changes}[0]{flags}, '\\Seen', 'with the new flags');
is(scalar @{$s->{adds}}, 0, 'and no add');

# An expunge is a delete.
$imap->delete_message($uid_of_day{4}) or die $imap->LastError;
$imap->expunge($folder);
$res = sync_req(client => $client, folder => $folder, key => 3);
$s = parse_sync($res->decoded_content);
is_deeply([map { (split /:/)[1] } @{$s->{deletes}}], [$uid_of_day{4}],
          'an expunged mail is one delete');

# A move out of the folder is a delete.
$imap->create("$folder.Archive");
$imap->move("$folder.Archive", $uid_of_day{5}) or die $imap->LastError;
$imap->expunge($folder);
$res = sync_req(client => $client, folder => $folder, key => 4);
$s = parse_sync($res->decoded_content);
is_deeply([map { (split /:/)[1] } @{$s->{deletes}}], [$uid_of_day{5}],
          'a mail moved away is one delete');
is(scalar @{$s->{adds}}, 0, 'and no add');

# Nothing changed: an empty answer with a new key.
$res = sync_req(client => $client, folder => $folder, key => 5);
$s = parse_sync($res->decoded_content);
is(scalar(@{$s->{adds}}) + @{$s->{changes}} + @{$s->{deletes}}, 0,
   'no change, empty answer');
is($s->{key}, '5', 'nothing changed: the key stays, nothing to store');

# An old key that is neither the last nor the one before: import again.
$res = sync_req(client => $client, folder => $folder, key => 2);
is($res->code, 409, 'a stale key answers 409');
like($res->decoded_content, qr/code="import-required"/, 'asking to import');

# Download a mail byte-exact.
$imap->select($folder);
my $raw = $imap->message_string($new_uid);
my $uv = $imap->uidvalidity($folder);
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=$folder"
                       . "&ref=$uv:$new_uid");
is($res->code, 200, 'download answers 200');
is($res->header('Content-Type'), 'message/rfc822', 'as message/rfc822');
ok($res->content eq $raw, 'byte-exact as Dovecot holds it');
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=$folder"
                       . "&ref=$uv:999999");
is($res->code, 404, 'unknown uid: 404');
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=$folder"
                       . "&ref=" . ($uv + 1) . ":$new_uid");
is($res->code, 404, 'other uidvalidity: 404');

# Ownership and identity.
my (undef, $bob_client) = enrol('bob', 'bob-secret');
$res = sync_req(client => $bob_client, folder => 'INBOX');
is($res->code, 403, 'alice cannot sync the client of bob');
like($res->decoded_content, qr/code="not-your-client"/, 'with a reason');
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$bob_client&folder=INBOX&ref=1:1");
is($res->code, 403, 'nor download through it');
$res = sync_req(client => 'nosuchclient', folder => 'INBOX');
is($res->code, 404, 'an unknown client is 404');
$res = sync_req(client => $client, folder => 'INBOX', password => 'wrong');
is($res->code, 401, 'a wrong password is 401');
$res = sync_req(client => $client, folder => "NoSuch$$");
is($res->code, 404, 'an unknown folder is 404');
like($res->decoded_content, qr/code="no-such-folder"/, 'named so');

# bob imports his own INBOX through his client.
$res = sync_req(client => $bob_client, user => 'bob', password => 'bob-secret');
is($res->code, 200, 'bob imports his own mailbox');

$imap->logout;
