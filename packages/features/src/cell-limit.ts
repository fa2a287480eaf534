/**
 * Ids one cell (a record's slot) may hold, in training and in serving alike:
 * a bag that large is no feature, float32 pooling of millions of rows loses
 * precision, and one record of millions of ids would stall the trainers that
 * pull and push its rows. Beyond it, a record is bad and a request refused.
 */
export const MAX_IDS_PER_CELL = 4096;
