import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  paginateListObjectsV2,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Config } from '../config';
import { assertKey, type BlobStorage, type StoredBlob } from './storage';

type S3Config = NonNullable<Config['files']['s3']>;

/** Objects live under this prefix, so the sweeper never touches anything else in a bucket. */
const PREFIX = 'files/';

/**
 * S3-compatible object storage (AWS S3, MinIO, R2, ...). Uploads are streamed as multipart
 * uploads by `@aws-sdk/lib-storage` (8 MiB parts, 4 in flight: bounded memory whatever the
 * size); a failed upload is aborted, so no partial object is ever visible under the key.
 */
export function s3Storage(config: S3Config): BlobStorage {
  const client = new S3Client({
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
  });
  const objectKey = (key: string) => {
    assertKey(key);
    return `${PREFIX}${key}`;
  };

  return {
    kind: 's3',
    async put(key, body: Readable) {
      const upload = new Upload({
        client,
        params: { Bucket: config.bucket, Key: objectKey(key), Body: body },
        partSize: 8 * 1024 * 1024,
        queueSize: 4,
        leavePartsOnError: false,
      });
      try {
        await upload.done();
      } catch (err) {
        body.destroy();
        throw err;
      }
    },
    async get(key, range) {
      try {
        const res = await client.send(
          new GetObjectCommand({
            Bucket: config.bucket,
            Key: objectKey(key),
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        );
        return (res.Body as Readable | undefined) ?? null;
      } catch (err) {
        if (err instanceof NoSuchKey) return null;
        if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return null;
        throw err;
      }
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: objectKey(key) }));
    },
    async *list(): AsyncIterable<StoredBlob> {
      const pages = paginateListObjectsV2({ client }, { Bucket: config.bucket, Prefix: PREFIX });
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          if (!object.Key) continue;
          yield {
            key: object.Key.slice(PREFIX.length),
            modifiedAt: object.LastModified ?? new Date(),
          };
        }
      }
    },
  };
}
