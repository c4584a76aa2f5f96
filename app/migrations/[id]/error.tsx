'use client';

import { ErrorView, type ErrorProps } from '../../components/ErrorView';

export default function MigrationError(props: ErrorProps) {
  return <ErrorView what="The migration view" {...props} />;
}
