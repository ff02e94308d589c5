import { z } from 'zod';
import { bool, httpUrl, int, setting } from '../lib/settings';

/** Raw file settings; config.ts shapes `s3` (set only with a bucket) and adds the local dir. */
export const storageConfig = {
  files: {
    uploadMaxBytes: setting({
      env: 'UPLOAD_MAX_BYTES',
      schema: int(1, 5 * 1024 * 1024 * 1024),
      default: '26214400',
      doc: 'largest upload accepted; larger gets 413',
    }),
    s3: {
      bucket: setting({
        env: 'S3_BUCKET',
        schema: z.string().trim().min(3).max(63).optional(),
        doc: 'store files in this S3-compatible bucket; unset: DATA_DIR/files',
      }),
      endpoint: setting({
        env: 'S3_ENDPOINT',
        schema: httpUrl().optional(),
        doc: 'for MinIO, R2, Ceph and the like; unset: AWS',
      }),
      region: setting({
        env: 'S3_REGION',
        schema: z.string().trim().min(1),
        default: 'us-east-1',
        doc: 'bucket region',
      }),
      accessKeyId: setting({
        env: 'S3_ACCESS_KEY_ID',
        schema: z.string().trim().min(1).optional(),
        doc: "both or neither; unset: the AWS SDK's default credential chain",
      }),
      secretAccessKey: setting({
        env: 'S3_SECRET_ACCESS_KEY',
        schema: z.string().trim().min(1).optional(),
        doc: "both or neither; unset: the AWS SDK's default credential chain",
      }),
      forcePathStyle: setting({
        env: 'S3_FORCE_PATH_STYLE',
        schema: bool,
        default: 'false',
        doc: 'bucket in the path, not the host name (MinIO and most self-hosted S3)',
      }),
    },
  },
};
