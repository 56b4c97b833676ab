/* test_pause.c: when paused senders are looked at again (pause.h): at the
 * end of a turn in which a destination drained below the resume mark while
 * someone is paused; never when nothing is paused or nothing drained. */
#include "../../pause.h"

#include "test.h"

int main(void)
{
    struct pause_book b = {0, 0};

    /* Nothing paused: a queue that drains costs no scan. */
    pause_note_drained(&b);
    CHECK(pause_rescan_due(&b) == 0);
    CHECK(pause_rescan_due(&b) == 0);

    /* A sender is paused; no destination drained this turn: no scan. */
    pause_note_paused(&b);
    CHECK(pause_rescan_due(&b) == 0);

    /* The destination drained: one scan at the end of that turn, not the next. */
    pause_note_drained(&b);
    CHECK(pause_rescan_due(&b) == 1);
    CHECK(pause_rescan_due(&b) == 0);

    /* Resumed: drains no longer ask for scans. */
    pause_note_resumed(&b);
    pause_note_drained(&b);
    CHECK(pause_rescan_due(&b) == 0);

    /* More resumes than pauses (a sender freed twice over) never go negative,
     * so a later pause still counts. */
    pause_note_resumed(&b);
    CHECK(b.npaused == 0);
    pause_note_paused(&b);
    pause_note_paused(&b);
    pause_note_drained(&b);
    CHECK(pause_rescan_due(&b) == 1);
    pause_note_resumed(&b);
    pause_note_drained(&b);
    CHECK(pause_rescan_due(&b) == 1); /* one is still paused */

    /* The resume mark: half of outq_soft, and no backlog (XEP-0198). */
    CHECK(pause_below_mark(0, 65536, 0) == 1);
    CHECK(pause_below_mark(32767, 65536, 0) == 1);
    CHECK(pause_below_mark(32768, 65536, 0) == 0);
    CHECK(pause_below_mark(65537, 65536, 0) == 0);
    CHECK(pause_below_mark(0, 65536, 1) == 0);

    TEST_REPORT();
}
